#!/bin/sh
# BeforeAllowTraffic: one request to each new instance before users come.
set -eu
for target in $(echo "${BG_GREEN_TARGETS:-127.0.0.1:8080}" | tr ',' ' '); do
	curl -fsS --max-time 5 "http://$target/" >/dev/null
done
echo "warmed"
