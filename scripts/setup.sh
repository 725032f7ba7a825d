#!/usr/bin/env bash
# Installs what the demo and the tests need on a fresh Debian machine, and nothing twice:
# Debian packages (Prometheus, git, Chromium and chromedriver), the Rust components (rustfmt, clippy) and the
# control-plane binaries (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok), built
# from Go modules once per version into ~/.cache/sluice.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
log() { echo "setup: $*" >&2; }

need_apt=()
command -v git >/dev/null || need_apt+=(git)
[ -x /usr/bin/prometheus ] || need_apt+=(prometheus)
# Headless Chromium and its WebDriver for the dashboard's browser test.
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_apt[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# The package may start its own server through the init system; Sluice's tests run their own on free ports.

if ! command -v cargo >/dev/null; then
  log "cargo is required (Rust toolchain via rustup)"; exit 1
fi
if command -v rustup >/dev/null; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || { log "adding rust component $c"; rustup component add "$c"; }
  done
fi
if ! command -v go >/dev/null; then
  log "the Go toolchain is required to build the control-plane binaries"; exit 1
fi
bash "$root/e2e/scripts/build-bins.sh" >/dev/null
bash "$root/e2e/scripts/build-gohash.sh" >/dev/null
bash "$root/e2e/scripts/build-gitops-tools.sh" >/dev/null
log "ready"
