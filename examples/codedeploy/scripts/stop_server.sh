#!/bin/sh
# ApplicationStop: runs from the revision being replaced, before it stops.
set -eu
cd "$(dirname "$0")/.."
echo "stopping shop $(cat VERSION)"
if systemctl cat shop.service >/dev/null 2>&1; then
	systemctl stop shop.service
fi
