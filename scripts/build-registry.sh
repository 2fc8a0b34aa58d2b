#!/usr/bin/env bash
# Builds the CNCF Distribution registry, the container registry the Docker
# platform's tests pull images from (internal/testregistry), from the Go module
# proxy, and caches it under ~/.cache/bluegreen/registry-VERSION/registry.
# Idempotent; prints the binary's path as its only line on stdout.
set -euo pipefail
exec "$(dirname "$0")/build-go-tool.sh" registry github.com/distribution/distribution/v3/cmd/registry v3.1.2
