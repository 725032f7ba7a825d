#!/usr/bin/env bash
# The tests: formatting and lints, the unit tests, and the end-to-end tests on a local control plane
# (each e2e test binary starts its own cluster and stops it when it exits).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo build --workspace --bins --quiet
cargo test --workspace --no-fail-fast
