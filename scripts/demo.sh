#!/usr/bin/env bash
# The demo, as root on Debian 12: builds rvs, reserves hugepages, then
# runs a client, rvsd and two nginx real servers in network namespaces,
# configures a NAT service with rvsadm, shows curl requests alternating
# between the real servers and prints rvsadm -Ln. Everything it creates is
# removed at the end, on Ctrl-C and on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/setup-hugepages.sh 512
cargo build --release --workspace --bins
RVS_BIN_DIR="$PWD/target/release" exec target/release/rvs-demo --hugepages
