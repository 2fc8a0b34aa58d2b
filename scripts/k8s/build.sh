#!/usr/bin/env bash
# Builds the Kubernetes binaries the Kubernetes platform's tests run
# (internal/testk8s): kube-apiserver, kube-controller-manager, kube-scheduler
# and kubelet of one Kubernetes release, and etcd, from the Go module proxy.
# They are cached under ~/.cache/bluegreen/k8s-VERSION/; a warm run builds
# nothing. Prints that directory as its only line on stdout; progress and
# errors go to stderr. A cold build takes 10 to 15 minutes on two cores and
# about 5 GB of Go caches.
set -euo pipefail

k8s_version=1.33.13
etcd_version=v3.5.21
# Every k8s.io staging module is replaced by its release of the same minor:
# k8s.io/kubernetes requires them at v0.0.0 and cannot be built otherwise.
staging_version=0.${k8s_version#1.}
staging="api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms
kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
mount-utils pod-security-admission sample-apiserver"
bins="kube-apiserver kube-controller-manager kube-scheduler kubelet etcd"

dir="${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen/k8s-$k8s_version"
stamp="$dir/.complete-$k8s_version-$etcd_version"
if [ -f "$stamp" ]; then
  echo "$dir"
  exit 0
fi

mkdir -p "$dir"
# Test binaries and setup may all find the cache cold: one builds while the
# others wait for it.
if command -v flock >/dev/null; then
  exec 9>"$dir/.lock"
  flock 9
  if [ -f "$stamp" ]; then
    echo "$dir"
    exit 0
  fi
fi

tmp=$(mktemp -d "$dir/build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
step() {
  local start=$SECONDS
  "$@" >&2
  echo "k8s/build: $(( SECONDS - start ))s: ${*:1:3}" >&2
}
echo "k8s/build: building Kubernetes $k8s_version and etcd $etcd_version into $dir (10 to 15 minutes the first time)" >&2

# The builds run in throwaway modules of their own, outside this project, so
# none of their dependencies enter bluegreen's go.mod; GOWORK=off keeps any
# go.work away.
export GOWORK=off CGO_ENABLED=0
mkdir -p "$tmp/k8s" "$tmp/etcd" "$tmp/out"
{
  printf 'module k8sbuild\n\ngo 1.24\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$k8s_version"
  for m in $staging; do printf '\tk8s.io/%s => k8s.io/%s v%s\n' "$m" "$m" "$staging_version"; done
  printf ')\n'
} >"$tmp/k8s/go.mod"
cat >"$tmp/k8s/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
minor=$(echo "$k8s_version" | cut -d. -f2)
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=v$k8s_version"
(
  cd "$tmp/k8s"
  step go mod tidy
  step go build -trimpath -ldflags "$ldflags" -o "$tmp/out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet
) || { echo "k8s/build: building Kubernetes $k8s_version failed (see above); it needs the Go module proxy" >&2; exit 1; }

# etcd's own go.mod has replace directives, so `go install PKG@VERSION` is
# refused: it is built through a wrapper module instead.
printf 'module etcdbuild\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$etcd_version" >"$tmp/etcd/go.mod"
printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$tmp/etcd/tools.go"
(
  cd "$tmp/etcd"
  step go mod tidy
  step go build -trimpath -ldflags "-s -w" -o "$tmp/out/etcd" go.etcd.io/etcd/server/v3
) || { echo "k8s/build: building etcd $etcd_version failed (see above); it needs the Go module proxy" >&2; exit 1; }

# A rename is atomic: nobody sees a half-written binary.
for b in $bins; do mv "$tmp/out/$b" "$dir/$b"; done
touch "$stamp"
echo "$dir"
