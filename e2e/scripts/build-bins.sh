#!/usr/bin/env bash
# Builds the control-plane binaries (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok)
# from Go modules, once per version, into the cache directory; prints that directory.
# Versions are pinned in e2e/k8sbins/go.mod (Kubernetes, etcd) and below (kwok).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
KUBE_VERSION=$(cd "$here/k8sbins" && GOTOOLCHAIN=local go list -m -f '{{.Version}}' k8s.io/kubernetes)
ETCD_VERSION=$(cd "$here/k8sbins" && GOTOOLCHAIN=local go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
KWOK_VERSION=v0.8.0
cache=${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}
out="$cache/bin/k8s-$KUBE_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"

have() { [ -x "$out/$1" ]; }
log() { echo "build-bins: $*" >&2; }

if ! command -v go >/dev/null; then
  log "the Go toolchain is required (go 1.26 or newer)"; exit 1
fi
mkdir -p "$out"

if ! have kube-apiserver || ! have kube-controller-manager || ! have kube-scheduler || ! have kubectl; then
  log "building Kubernetes $KUBE_VERSION (first run on this machine: 15-30 minutes)"
  minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
  ldf="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  tmp="$out/.tmp"; rm -rf "$tmp"; mkdir -p "$tmp"
  (cd "$here/k8sbins" && go build -ldflags "$ldf" -o "$tmp/" \
     k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
     k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
  mv "$tmp"/* "$out/"; rm -rf "$tmp"
fi

if ! have etcd; then
  log "building etcd $ETCD_VERSION"
  (cd "$here/k8sbins" && go build -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$out/etcd.tmp" "$out/etcd"
fi

if ! have kwok; then
  log "building kwok $KWOK_VERSION"
  gobin="$out/.gobin"; rm -rf "$gobin"; mkdir -p "$gobin"
  GOBIN="$gobin" GOFLAGS="-trimpath -buildvcs=false" go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  mv "$gobin/kwok" "$out/kwok"; rm -rf "$gobin"
fi

# kwok's fast stages (node init, heartbeat, pod ready/complete/delete) from its module source.
if [ ! -s "$out/kwok-stages.yaml" ]; then
  dir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
  s="$dir/kustomize/stage"
  {
    cat "$s/node/fast/node-initialize.yaml"; echo "---"
    cat "$s/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml"; echo "---"
    cat "$s/pod/fast/pod-ready.yaml"; echo "---"
    cat "$s/pod/fast/pod-complete.yaml"; echo "---"
    cat "$s/pod/fast/pod-delete.yaml"
  } > "$out/kwok-stages.yaml.tmp"
  mv "$out/kwok-stages.yaml.tmp" "$out/kwok-stages.yaml"
fi
echo "$out"
