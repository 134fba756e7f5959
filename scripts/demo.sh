#!/usr/bin/env bash
# The xvs demo. Until the eBPF datapath and xvsd land, the demo runs the
# reference model through the simulator: the classic LVS labs as workloads.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo build --release --locked -p xvs-sim
for w in wrr-nat sh-remove mh-remove persistence udp-dns; do
  echo
  echo "===== examples/sim/$w.sim"
  grep '^#' "examples/sim/$w.sim" | sed 's/^# \{0,1\}/  /'
  echo
  ./target/release/xvs-sim "examples/sim/$w.sim"
done
