#!/usr/bin/env bash
# Builds Pebble, Let's Encrypt's ACME test server, which the HTTPS tests
# obtain certificates from (internal/testacme), from the Go module proxy, and
# caches it under ~/.cache/bluegreen/pebble-VERSION/pebble.
# Idempotent; prints the binary's path as its only line on stdout.
set -euo pipefail
exec "$(dirname "$0")/build-go-tool.sh" pebble github.com/letsencrypt/pebble/v2/cmd/pebble v2.10.3
