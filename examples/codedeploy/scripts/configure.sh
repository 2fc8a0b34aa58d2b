#!/bin/sh
# AfterInstall: the revision's files are in place and the app can run.
set -eu
cd "$(dirname "$0")/.."
for f in VERSION shop; do
	if [ ! -e "$f" ]; then
		echo "missing $f" >&2
		exit 1
	fi
done
echo "installed shop $(cat VERSION)"
