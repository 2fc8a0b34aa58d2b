#!/usr/bin/env bash
# The whole test suite. Installs what the tests need (idempotent), then runs
# vet, the tests, and the race detector over the concurrent packages.
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
echo "== go test"
go test -count=1 -timeout 30m ./...
echo "== go test -race (concurrent packages)"
go test -count=1 -race -short -timeout 30m ./internal/router/... ./internal/store/... ./internal/params/... ./internal/artifact/... \
  ./internal/engine/... ./internal/routerproc/... ./internal/platform/... ./internal/api/... \
  ./internal/web/... ./internal/sampler/... ./internal/auth/...
