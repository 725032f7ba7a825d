#!/usr/bin/env bash
# The demo: starts a local control plane, installs the CRDs, runs the operator and walks a sample Rollout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
cargo build --quiet -p sluice -p sluice-cli -p sluice-e2e
exec ./target/debug/sluice-e2e demo
