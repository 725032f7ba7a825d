#!/usr/bin/env bash
# Builds `gohash` (e2e/gohash) twice, once per pin of the Kubernetes modules, into a cache directory named by
# the hash of its sources, and prints that directory:
#   gohash       k8s.io/api as the local control plane (e2e/k8sbins/go.mod), from go.mod;
#   gohash-argo  k8s.io/api as Argo Rollouts pins it, from go.argo.mod.
# With --write-tables it also writes the two generated Rust tables of gojson/src/.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$here/.." && pwd)
src="$here/gohash"
cache=${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}
key=$(cd "$src" && cat go.mod go.sum go.argo.mod go.argo.sum $(find cmd -name '*.go' | sort) | sha256sum | cut -c1-16)
out="$cache/bin/gohash-$key"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
log() { echo "build-gohash: $*" >&2; }

mkdir -p "$out"
if [ ! -x "$out/gohash" ]; then
  log "building gohash"
  (cd "$src" && go build -ldflags "-s -w" -o "$out/gohash.tmp" ./cmd/gohash) && mv "$out/gohash.tmp" "$out/gohash"
fi
if [ ! -x "$out/gohash-argo" ]; then
  log "building gohash-argo"
  (cd "$src" && go build -modfile=go.argo.mod -ldflags "-s -w" -o "$out/gohash-argo.tmp" ./cmd/gohash) \
    && mv "$out/gohash-argo.tmp" "$out/gohash-argo"
fi
if [ "${1:-}" = "--write-tables" ]; then
  "$out/gohash" table > "$root/gojson/src/table.rs"
  "$out/gohash-argo" table > "$root/gojson/src/table_argo.rs"
  log "wrote gojson/src/table.rs and table_argo.rs"
fi
echo "$out"
