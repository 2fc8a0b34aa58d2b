#!/bin/sh
# ValidateService: every new instance answers its health check. Under
# CodeDeploy the app listens on 127.0.0.1:8080 of each host; bluegreen names
# the new instances in BG_GREEN_TARGETS.
set -eu
for target in $(echo "${BG_GREEN_TARGETS:-127.0.0.1:8080}" | tr ',' ' '); do
	curl -fsS --max-time 5 "http://$target/healthz" >/dev/null
	echo "healthy: $target"
done
