#!/usr/bin/env bash
# Builds the CNCF Distribution registry, the container registry the Docker
# platform's tests pull images from (internal/testregistry), from the Go module
# proxy, and caches it under ~/.cache/bluegreen/registry-VERSION/registry.
# Idempotent: when the binary is there it builds nothing. Prints the binary's
# path as its only line on stdout; progress and errors go to stderr.
set -euo pipefail

version=v3.1.2
pkg=github.com/distribution/distribution/v3/cmd/registry

dir="${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen/registry-$version"
bin="$dir/registry"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$dir"
# Test packages run in parallel and may all find the binary missing: one
# builds while the others wait for it.
if command -v flock >/dev/null; then
  exec 9>"$dir/.lock"
  flock 9
  if [ -x "$bin" ]; then
    echo "$bin"
    exit 0
  fi
fi

echo "build-registry: building $pkg@$version (a few minutes the first time)" >&2
tmp=$(mktemp -d "$dir/build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# `go install PKG@VERSION` builds in a module of its own, with the registry's
# go.mod, outside this project: none of its dependencies enter bluegreen's
# go.mod. It runs from the temporary directory so no go.work applies.
if ! (cd "$tmp" && GOWORK=off GOBIN="$tmp" CGO_ENABLED=0 go install -trimpath "$pkg@$version" >&2); then
  echo "build-registry: building $pkg@$version failed (see above); it needs the Go module proxy" >&2
  exit 1
fi
# A rename is atomic: nobody sees a half-written binary.
mv "$tmp/registry" "$bin"
echo "$bin"
