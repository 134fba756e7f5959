#!/usr/bin/env bash
# Installs what xvs needs to build and test on Debian 12, if it is missing.
# Safe to run again: it only installs what is absent.
set -euo pipefail

need_apt=()
command -v cargo >/dev/null 2>&1 || { echo "xvs: cargo (Rust stable) is required; install it with rustup" >&2; exit 1; }
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "xvs: missing packages ${need_apt[*]}; run as root or install them" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
