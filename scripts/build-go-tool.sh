#!/usr/bin/env bash
# build-go-tool.sh NAME PKG VERSION builds the Go command PKG@VERSION from
# the Go module proxy and caches it under ~/.cache/bluegreen/NAME-VERSION/NAME.
# Idempotent: when the binary is there it builds nothing. Prints the binary's
# path as its only line on stdout; progress and errors go to stderr. The
# test servers the project builds this way (scripts/build-registry.sh,
# scripts/build-pebble.sh) call it.
set -euo pipefail

name=$1 pkg=$2 version=$3

dir="${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen/$name-$version"
bin="$dir/$name"
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

echo "build-$name: building $pkg@$version (a few minutes the first time)" >&2
tmp=$(mktemp -d "$dir/build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# `go install PKG@VERSION` builds in a module of its own, with the command's
# go.mod, outside this project: none of its dependencies enter bluegreen's
# go.mod. It runs from the temporary directory so no go.work applies.
if ! (cd "$tmp" && GOWORK=off GOBIN="$tmp" CGO_ENABLED=0 go install -trimpath "$pkg@$version" >&2); then
  echo "build-$name: building $pkg@$version failed (see above); it needs the Go module proxy" >&2
  exit 1
fi
# A rename is atomic: nobody sees a half-written binary.
mv "$tmp/$(basename "$pkg")" "$bin"
echo "$bin"
