#!/usr/bin/env bash
# Runs every xvs test: formatting, lints, and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build (the binaries the end-to-end tests run: xvsd, xvsadm, xvs-demo)"
cargo build --workspace --locked --release --bins
echo "== cargo test"
cargo test --workspace --locked --release
