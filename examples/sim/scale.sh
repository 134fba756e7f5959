#!/usr/bin/env bash
# Scale run of the simulator: 1,000 real servers behind one wlc service and
# 10 million connections (100k/s for 100 s, 60 s lifetime: ~6M live at peak).
# Prints the simulator's report, which includes wall time and peak memory.
set -euo pipefail
cd "$(dirname "$0")/../.."
sched=${1:-wlc}
f=$(mktemp /tmp/xvs-scale.XXXXXX.sim)
trap 'rm -f "$f"' EXIT
{
  echo "ipvsadm -A -t 198.18.0.1:80 -s $sched"
  for i in $(seq 0 999); do
    echo "ipvsadm -a -t 198.18.0.1:80 -r 198.18.$((16 + i / 250)).$((1 + i % 250)):80 -m -w $((1 + i % 4))"
  done
  echo "clients 65000"
  echo "rate 100000"
  echo "lifetime 60"
  echo "duration 100"
  echo "probes 100000"
  echo "at 50 ipvsadm -d -t 198.18.0.1:80 -r 198.18.16.1:80"
} > "$f"
cargo build --release -q -p xvs-sim
./target/release/xvs-sim "$f"
