#!/usr/bin/env bash
# Prints rvs's benchmark table, as root on Debian 12: rvsd against
# dpdk-testpmd on the same ports and cores (cross-process over memif in
# every forwarding mode and with one and two workers, and a single
# forwarding core on an in-memory replay), new connections per second,
# and the kernel's nftables DNAT on veths, interleaved in the same run.
# Writes the raw figures (JSON) and a chart (SVG) under target/bench/.
#
#   scripts/bench.sh            full run: 3 pairs of 10 s per case
#   scripts/bench.sh --quick    1 pair of 2 s per case, most cases, under
#                               2 minutes
#   scripts/bench.sh --smoke    about a second per run, checks only that
#                               every run carried traffic
#   scripts/bench.sh --lab      the end-to-end lab benchmark (curl, wrk,
#                               nginx through rvsd and the kernel)
# Other options go to rvs-bench (--pairs N, --duration S, --filter TEXT,
# --out DIR; see target/release/rvs-bench --help).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release --workspace --bins
# Where cargo put them (CARGO_TARGET_DIR, if set, moves target/).
bin_dir="${CARGO_TARGET_DIR:-$PWD/target}/release"

if [[ ${1:-} == --lab ]]; then
    RVS_BIN_DIR="$bin_dir" exec "$bin_dir/rvs-lab-bench"
fi

# The generator (256 MiB) and a forwarder replaying a million frames
# (about 1 GiB) run at the same time.
scripts/setup-hugepages.sh 1536
exec "$bin_dir/rvs-bench" "$@"
