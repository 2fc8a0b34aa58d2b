#!/bin/sh
# BeforeInstall: what the scripts need must be installed on the host.
set -eu
for tool in curl; do
	if ! command -v "$tool" >/dev/null; then
		echo "$tool is not installed" >&2
		exit 1
	fi
done
echo "dependencies present"
