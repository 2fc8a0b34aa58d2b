#!/bin/sh
# AfterInstall: write this revision's release file beside the app.
set -eu
cd "$(dirname "$0")/.."
printf 'version=%s\n' "$(cat VERSION)" > release.env
echo "configured shop $(cat VERSION)"
