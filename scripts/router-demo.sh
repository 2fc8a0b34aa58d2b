#!/usr/bin/env bash
# A blue/green switch through the router, end to end on this machine: two
# versions of the example app, the router from examples/router/routes.yaml,
# steady load from a separate process, and traffic moved 0 → 10 → 50 → 100 %
# through the admin API. Stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

out=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$out"
}
trap cleanup EXIT INT TERM

for port in 8080 8081 9100 9001 9002; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    echo "port $port on 127.0.0.1 is in use; the demo needs 8080, 8081, 9100, 9001 and 9002" >&2
    exit 1
  fi
done

echo "== building"
go build -o "$out/bluegreen" ./cmd/bluegreen
go build -o "$out/bgload" ./cmd/bgload
go build -o "$out/hello" ./examples/hello

VERSION=v1 "$out/hello" -listen 127.0.0.1:9001 >/dev/null 2>&1 & pids+=($!)
VERSION=v2 "$out/hello" -listen 127.0.0.1:9002 >/dev/null 2>&1 & pids+=($!)
"$out/bluegreen" router --config examples/router/routes.yaml --log-format text 2>"$out/router.log" & pids+=($!)

admin=http://127.0.0.1:9100
for _ in $(seq 100); do curl -sf $admin/healthz >/dev/null && break; sleep 0.1; done
curl -sf $admin/healthz >/dev/null || { echo "router did not start:" >&2; cat "$out/router.log" >&2; exit 1; }

echo "== production serves blue (v1); the test listener serves green (v2)"
echo "   production: $(curl -s 127.0.0.1:8080/)"
echo "   test:       $(curl -s 127.0.0.1:8081/)"

echo "== 500 req/s for 16 s from a separate process while traffic moves"
"$out/bgload" -url http://127.0.0.1:8080/ -rate 500 -duration 16s -c 8 -header X-Version > "$out/load.json" & load=$!
pids+=($load)

shift_to() {
  local green=$1 blue=$((100 - $1))
  curl -s $admin/routes | python3 -c "
import json, sys
t = json.load(sys.stdin)['table']
t['apps']['shop']['fleets']['blue']['weight'] = $blue
t['apps']['shop']['fleets']['green']['weight'] = $green
print(json.dumps(t))" | curl -sf -X PUT --data-binary @- $admin/routes >/dev/null
  echo "   $(date +%T) green at $green %"
}
sleep 4; shift_to 10
sleep 4; shift_to 50
sleep 4; shift_to 100
wait $load

echo "== what the load saw"
python3 - "$out/load.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"   requests: {s['sent']}, failed: {s['failed']}, by version: {s['by_value']}")
PY
echo "== green's last 10 s, from GET $admin/stats"
curl -s $admin/stats | python3 -c "
import json, sys
w = json.load(sys.stdin)['apps']['shop']['fleets']['green']['windows']['10s']
print(f\"   {w['requests']} requests, error rate {w['error_rate']:.3f}, p99 {w['p99_seconds']*1000:.1f} ms\")"
