#!/usr/bin/env bash
# Installs what xvs needs to build and test on Debian 12, if it is missing:
# clang and libbpf headers for the BPF programs, ethtool, then (bench/install-deps.sh)
# iproute2, curl, nginx, wrk, haproxy, nginx stream and nftables for the
# network-namespace tests and the benchmark. Safe to run again: it only
# installs what is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null 2>&1 || {
  echo "xvs: cargo (Rust stable) is required; install it with rustup" >&2
  exit 1
}

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
command -v llvm-strip >/dev/null 2>&1 || need_apt+=(llvm)
[ -f /usr/include/bpf/bpf_helpers.h ] || need_apt+=(libbpf-dev)
[ -d /usr/include/x86_64-linux-gnu/asm ] || [ "$(uname -m)" != x86_64 ] || need_apt+=(linux-libc-dev)
# The XDP-mode lab turns checksum offload off on a veth.
command -v ethtool >/dev/null 2>&1 || need_apt+=(ethtool)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "xvs: missing packages: ${need_apt[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "xvs: installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

bash bench/install-deps.sh
