#!/usr/bin/env bash
# Installs what building, testing and demonstrating rvs need on Debian 12,
# as root: DPDK 22.11 and its headers, libclang (bindgen), the programs the
# end-to-end lab runs (nginx, dnsmasq, curl, dig, wrk, ethtool, iproute2,
# ping, nftables).
# Idempotent: apt runs only when something is missing.
set -euo pipefail

die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

[[ $(id -u) -eq 0 ]] || die "needs root (it installs packages; rvs needs root for DPDK and namespaces)"

# package:command-or-file that shows it is installed
readonly NEEDED=(
    dpdk:/usr/bin/dpdk-testpmd
    libdpdk-dev:/usr/lib/x86_64-linux-gnu/pkgconfig/libdpdk.pc
    libclang-dev:/usr/lib/llvm-14/lib/libclang.so
    clang:/usr/bin/clang
    pkg-config:/usr/bin/pkg-config
    build-essential:/usr/bin/cc
    nginx-light:/usr/sbin/nginx
    curl:/usr/bin/curl
    dnsmasq-base:/usr/sbin/dnsmasq
    bind9-dnsutils:/usr/bin/dig
    wrk:/usr/bin/wrk
    ethtool:/usr/sbin/ethtool
    iproute2:/usr/sbin/ip
    iputils-ping:/usr/bin/ping
    nftables:/usr/sbin/nft
)

missing=()
for entry in "${NEEDED[@]}"; do
    package=${entry%%:*}
    path=${entry#*:}
    [[ -e $path ]] || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

command -v cargo >/dev/null || die "cargo not found: install Rust (rustup, stable >= 1.88) first"
