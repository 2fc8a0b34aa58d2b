#!/bin/sh
# ApplicationStart: start the app's service (its unit comes with the host).
set -eu
cd "$(dirname "$0")/.."
echo "starting shop $(cat VERSION)"
if systemctl cat shop.service >/dev/null 2>&1; then
	systemctl start shop.service
fi
