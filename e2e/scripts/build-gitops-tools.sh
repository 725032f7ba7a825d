#!/usr/bin/env bash
# Builds the rendering tools of the Application controller (kustomize, helm) from their Go modules, once per
# version, into the cache directory; prints that directory. Versions are pinned in e2e/gitopstools/go.mod.
# Both binaries are built into a temporary directory that is renamed into place only when both are done, so an
# interrupted build is never taken for a cached one.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
src="$here/gitopstools"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
log() { echo "build-gitops-tools: $*" >&2; }

if ! command -v go >/dev/null; then
  log "the Go toolchain is required (go 1.26 or newer)"; exit 1
fi
KUSTOMIZE_VERSION=$(cd "$src" && go list -m -f '{{.Version}}' sigs.k8s.io/kustomize/kustomize/v5)
HELM_VERSION=$(cd "$src" && go list -m -f '{{.Version}}' helm.sh/helm/v3)
cache=${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}
out="$cache/bin/gitops-tools-kustomize-$KUSTOMIZE_VERSION-helm-$HELM_VERSION"

if [ -x "$out/kustomize" ] && [ -x "$out/helm" ]; then
  echo "$out"; exit 0
fi

log "building kustomize $KUSTOMIZE_VERSION and helm $HELM_VERSION (first run on this machine: a few minutes)"
mkdir -p "$cache/bin"
tmp=$(mktemp -d "$cache/bin/.gitops-tools.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$src" && go build \
   -ldflags "-s -w -X sigs.k8s.io/kustomize/api/provenance.version=kustomize/$KUSTOMIZE_VERSION -X sigs.k8s.io/kustomize/api/provenance.buildDate=1970-01-01T00:00:00Z" \
   -o "$tmp/kustomize" sigs.k8s.io/kustomize/kustomize/v5)
(cd "$src" && go build \
   -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
   -o "$tmp/helm" helm.sh/helm/v3/cmd/helm)
"$tmp/kustomize" version >/dev/null
"$tmp/helm" version --short >/dev/null
chmod 0755 "$tmp"
rm -rf "$out"
# Another build finishing first wins; this one is then discarded.
mv -T "$tmp" "$out" 2>/dev/null || rm -rf "$tmp"
trap - EXIT
echo "$out"
