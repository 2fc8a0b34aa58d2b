#!/usr/bin/env bash
# The whole test suite. Installs what the tests need (idempotent), then runs
# vet, the tests, and the race detector over the concurrent packages. The
# tests' progress is shown as they end (a line per package, per long test,
# and what still runs when it is quiet), with one line of totals at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh

echo "== go vet"
go vet ./...
echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go') 2>/dev/null || true)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" $unformatted >&2
  exit 1
fi
go build -o bin/testsummary ./scripts/testsummary
echo "== go test, then go test -race over the concurrent packages"
{
  go test -json -count=1 -timeout 30m ./... || true
  go test -json -count=1 -race -short -timeout 30m ./internal/router/... ./internal/store/... ./internal/params/... ./internal/artifact/... \
    ./internal/engine/... ./internal/routerproc/... ./internal/platform/... ./internal/api/... \
    ./internal/web/... ./internal/sampler/... ./internal/auth/... ./internal/server/... ./internal/notify/... ./internal/metrics/... || true
} 2>&1 | bin/testsummary
