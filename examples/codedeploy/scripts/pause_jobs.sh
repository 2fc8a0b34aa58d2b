#!/bin/sh
# BeforeBlockTraffic: the old instances are about to be taken out of service.
set -eu
echo "pausing background jobs"
