#!/bin/sh
# AfterBlockTraffic: the old instances take no more requests.
set -eu
echo "old instances drained"
