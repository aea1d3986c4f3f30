#!/usr/bin/env bash
# Prints rvs's benchmark figures, as root on Debian 12: rvsd in the
# end-to-end lab (NAT through DPDK net_af_packet ports on veths, real wrk,
# curl and nginx) against the Linux kernel doing the same NAT (nftables) on
# the same lab, in the same run. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release --workspace --bins
RVS_BIN_DIR="$PWD/target/release" exec target/release/rvs-lab-bench
