#!/usr/bin/env bash
# Runs every test of rvs, as root on Debian 12: formatting and lints, the
# unit and property tests (packet views, connection table, schedulers,
# director on in-memory ports, config, protocol, rvsadm, DPDK bindings on
# virtual devices), then the end-to-end tests (real curl, dig, nginx and dnsmasq
# through a running rvsd in network namespaces), and a short run of every
# benchmark case. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

step() {
    echo
    echo "== $*"
}

step "formatting and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings

step "release binaries"
cargo build --release --workspace --bins

step "unit and property tests"
cargo test --workspace --exclude rvs-e2e

step "end-to-end tests"
# One lab at a time: each runs rvsd, nginx and clients on this machine.
RVS_BIN_DIR="$PWD/target/release" cargo test --release -p rvs-e2e -- --test-threads=1

step "benchmark smoke test"
# Every benchmark case for about a second, checking that each carried
# traffic: rvs-pktgen, rvsd and dpdk-testpmd over memif, pcap and af_packet.
scripts/setup-hugepages.sh 1536
RVS_BIN_DIR="$PWD/target/release" cargo test --release -p rvs-pktgen --test bench_smoke -- --ignored

step "all tests passed"
