#!/usr/bin/env bash
# Installs what the tests need on a fresh machine. Idempotent; quick when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

go mod download
