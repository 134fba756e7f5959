#!/usr/bin/env bash
# The xvs demo: installs what is missing, builds, then runs the classic LVS
# labs (NAT, then DR) in network namespaces with xvsd and xvsadm.
#   ./scripts/demo.sh [--mode nat|dr|both] [--requests N] [--keep]
# Needs root. Ctrl-C tears everything down; a killed run is cleaned up by the
# next one.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo build --release --locked -p xvsd -p xvsadm -p xvs-demo
exec ./target/release/xvs-demo "$@"
