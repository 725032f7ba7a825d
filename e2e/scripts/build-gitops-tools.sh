#!/usr/bin/env bash
# Builds kustomize and helm from their Go modules, once per version, into the cache directory; prints that
# directory. An interrupted build is never taken for a cached one (each binary is moved in when complete).
set -euo pipefail
KUSTOMIZE_VERSION=v5.7.1
HELM_VERSION=v3.22.0
cache=${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}
out="$cache/bin/gitops-tools-kustomize-$KUSTOMIZE_VERSION-helm-$HELM_VERSION"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
log() { echo "build-gitops-tools: $*" >&2; }
if ! command -v go >/dev/null; then
  log "the Go toolchain is required (go 1.26 or newer)"; exit 1
fi
mkdir -p "$out"
build() { # name module@version ldflags
  local name=$1 pkg=$2 ldflags=$3
  [ -x "$out/$name" ] && return 0
  log "building $name from $pkg (first run on this machine)"
  local gobin="$out/.gobin-$name"; rm -rf "$gobin"; mkdir -p "$gobin"
  GOBIN="$gobin" go install -ldflags "-s -w $ldflags" "$pkg"
  mv "$gobin/$name" "$out/$name"; rm -rf "$gobin"
}
build kustomize "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" \
  "-X sigs.k8s.io/kustomize/api/provenance.version=$KUSTOMIZE_VERSION"
build helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
  "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
echo "$out"
