#!/bin/sh
# AfterAllowTraffic: the new revision has all the traffic.
set -eu
cd "$(dirname "$0")/.."
echo "shop $(cat VERSION) serves all traffic"
