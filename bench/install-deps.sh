#!/usr/bin/env bash
# Installs what the benchmark needs on Debian 12, if it is missing:
# haproxy, nginx with its stream module, wrk, nftables, curl, iproute2,
# gnuplot (the figures), and clang + libbpf-dev (the BPF programs of
# xvs-datapath and of the benchmark's packet generator).
# Safe to run again: it only installs what is absent.
set -euo pipefail

need=()
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v nginx >/dev/null 2>&1 || need+=(nginx)
[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] || [ -f /usr/share/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v gnuplot >/dev/null 2>&1 || need+=(gnuplot-nox)
command -v clang >/dev/null 2>&1 || need+=(clang llvm)
[ -f /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "xvs bench: missing packages: ${need[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "xvs bench: installing ${need[*]}" >&2
  apt-get update -qq
  # policy-rc.d may refuse to start the packaged services: that is fine,
  # the benchmark runs its own instances in namespaces.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
