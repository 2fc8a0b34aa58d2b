#!/usr/bin/env bash
# Installs what the tests need on a fresh machine. Idempotent; quick when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

go mod download

# The dashboard's browser tests drive Debian's chromium headless
# (test/e2e/dashboard_test.go; $CHROMIUM points elsewhere).
if [ -z "${CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: chromium is missing; run as root, or: sudo apt-get install -y --no-install-recommends chromium" >&2
    exit 1
  fi
  echo "setup: installing chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium
fi
