#!/usr/bin/env bash
# Builds Pebble, Let's Encrypt's ACME test server, which the HTTPS tests
# obtain certificates from (internal/testacme), from the Go module proxy, and
# caches it under ~/.cache/bluegreen/pebble-VERSION/pebble.
# Idempotent: when the binary is there it builds nothing. Prints the binary's
# path as its only line on stdout; progress and errors go to stderr.
set -euo pipefail

version=v2.10.3
pkg=github.com/letsencrypt/pebble/v2/cmd/pebble

dir="${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen/pebble-$version"
bin="$dir/pebble"
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

echo "build-pebble: building $pkg@$version (a few minutes the first time)" >&2
tmp=$(mktemp -d "$dir/build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# `go install PKG@VERSION` builds in a module of its own, with Pebble's
# go.mod, outside this project: none of its dependencies enter bluegreen's
# go.mod. It runs from the temporary directory so no go.work applies.
if ! (cd "$tmp" && GOWORK=off GOBIN="$tmp" CGO_ENABLED=0 go install -trimpath "$pkg@$version" >&2); then
  echo "build-pebble: building $pkg@$version failed (see above); it needs the Go module proxy" >&2
  exit 1
fi
# A rename is atomic: nobody sees a half-written binary.
mv "$tmp/pebble" "$bin"
echo "$bin"
