#!/usr/bin/env bash
# Installs what the tests need on a fresh machine. Idempotent; quick when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

go mod download

# Debian packages the tests run: chromium drives the dashboard's browser
# tests (test/e2e/dashboard_test.go; $CHROMIUM points elsewhere); nginx and
# python3 are apps nobody here wrote (test/e2e/firsthour_test.go); prlimit
# runs a server under a low open-files limit (test/e2e/security_api_test.go);
# docker.io brings dockerd, containerd and runc, which the Docker platform's
# tests start privately (internal/testdocker), never as the system's daemon;
# prometheus is the real Prometheus that prometheus check rules query and
# that scrapes the server (internal/testprom runs it in the foreground);
# containernetworking-plugins brings the loopback CNI plugin the test
# cluster's kubelet needs (internal/testk8s; containerd and runc come with
# docker.io); iproute2 makes the network namespace its node runs in, and
# util-linux's nsenter starts the node's processes there.
# curl speaks HTTP/2 to the router over TLS (test/e2e/https_test.go).
# gcc and libc6-dev build the scale benchmark's instances, a small C program
# (bench/scale/app/app.c), and its test.
missing=()
if [ -z "${CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then missing+=(chromium); fi
[ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -x /usr/bin/python3 ] || missing+=(python3)
command -v prlimit >/dev/null && command -v nsenter >/dev/null || missing+=(util-linux)
command -v ip >/dev/null || missing+=(iproute2)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v prometheus >/dev/null || missing+=(prometheus)
[ -x /usr/lib/cni/loopback ] || missing+=(containernetworking-plugins)
command -v curl >/dev/null || missing+=(curl)
command -v gcc >/dev/null || missing+=(gcc)
[ -f /usr/include/stdio.h ] || missing+=(libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: ${missing[*]} missing; run as root, or: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # nginx's package starts a server on port 80 where it can: the tests run
  # their own, so the packaged one is stopped.
  if command -v nginx >/dev/null && [ -f /run/nginx.pid ]; then
    nginx -s quit 2>/dev/null || true
  fi
  # Likewise docker.io's daemon, where its package could start one: it would
  # bring up the default bridge, which the tests never use.
  if [ -f /var/run/docker.pid ] && [[ " ${missing[*]} " == *" docker.io "* ]]; then
    kill "$(cat /var/run/docker.pid)" 2>/dev/null || true
  fi
  # And prometheus's, where its package could start one on port 9090: the
  # tests run their own, on ports of their own.
  if [[ " ${missing[*]} " == *" prometheus "* ]]; then
    invoke-rc.d prometheus stop >/dev/null 2>&1 || true
  fi
fi

# The container registry the Docker platform's tests pull images from
# (internal/testregistry): built once from the Go module proxy and cached
# under ~/.cache/bluegreen (about two minutes the first time).
./scripts/build-registry.sh >/dev/null

# The Kubernetes binaries the Kubernetes platform's tests run a cluster of
# (internal/testk8s): built once from the Go module proxy and cached under
# ~/.cache/bluegreen (10 to 15 minutes the first time).
./scripts/k8s/build.sh >/dev/null
# Pebble, the ACME server the HTTPS tests obtain certificates from
# (internal/testacme): built once from the Go module proxy and cached.
./scripts/build-pebble.sh >/dev/null
