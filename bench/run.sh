#!/usr/bin/env bash
# Proxy benchmark: the bluegreen router against HAProxy, nginx and a plain
# httputil.ReverseProxy, all in front of the same two Go backends on 127.0.0.1.
# See bench/README.md. Settings come from the environment or from flags passed
# through to the driver (e.g. ./bench/run.sh -rounds 1 -duration 2):
#   BENCH_ROUNDS (3)  BENCH_DURATION seconds per run (5)  BENCH_WARMUP seconds (1)
#   BENCH_CONNS (64,256)  BENCH_PROXIES (direct,haproxy,nginx,revproxy,bluegreen)
#   BENCH_WORKLOADS (get,post: plain GETs, and POSTs of a 2 KiB body)
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/out
mkdir -p "$out"

# Kill whatever the driver started if it dies without cleaning up; the driver
# stops its processes itself on normal exit, failure and Ctrl-C.
cleanup() {
  if [ -f "$out/pids" ]; then
    while read -r pgid; do
      [ -n "$pgid" ] && kill -KILL -- "-$pgid" 2>/dev/null || true
    done <"$out/pids"
    rm -f "$out/pids"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
if ! have wrk || ! have haproxy || ! have nginx || ! have h2load; then
  echo "== installing wrk, haproxy, nginx, h2load"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends wrk haproxy nginx nghttp2-client
fi

echo "== building"
go build -o "$out/backend" ./bench/backend
go build -o "$out/revproxy" ./bench/revproxy
go build -o "$out/proxybench" ./bench/proxybench
# A broken bluegreen build is reported in the results instead of hiding the peers' numbers.
rm -f "$out/bluegreen"
if ! go build -o "$out/bluegreen" ./cmd/bluegreen >"$out/build-bluegreen.log" 2>&1; then
  echo "bluegreen did not build (see $out/build-bluegreen.log):" >&2
  head -5 "$out/build-bluegreen.log" >&2
fi

echo "== running"
"$out/proxybench" -out "$out" \
  -rounds "${BENCH_ROUNDS:-3}" -duration "${BENCH_DURATION:-5}" -warmup "${BENCH_WARMUP:-1}" \
  -conns "${BENCH_CONNS:-64,256}" -workloads "${BENCH_WORKLOADS:-get,post}" -proxies "${BENCH_PROXIES:-direct,haproxy,nginx,revproxy,bluegreen}" \
  "$@"
