#!/usr/bin/env bash
# Reserve 2 MiB hugepages and mount hugetlbfs for DPDK (rvsd).
# Idempotent: does only what is missing and says what it did.
set -euo pipefail

readonly PAGE_KB=2048
readonly DEFAULT_PAGES=1024
readonly DEFAULT_MOUNTPOINT=/dev/hugepages
readonly NR_HUGEPAGES=/sys/kernel/mm/hugepages/hugepages-${PAGE_KB}kB/nr_hugepages

usage() {
    cat <<EOF
Usage: $(basename "$0") [PAGES] [MOUNTPOINT]

Reserves at least PAGES hugepages of 2 MiB (default ${DEFAULT_PAGES}, i.e. 2 GiB)
and mounts hugetlbfs at MOUNTPOINT (default ${DEFAULT_MOUNTPOINT}) if it is
not mounted there, as DPDK needs. Existing reservations that are large
enough are left alone, so the script can run at every boot. Needs root.

Without hugepages (tests, small VMs), give rvsd's EAL "--no-huge -m MB"
instead.
EOF
}

die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    usage
    exit 0
fi
if (($# > 2)); then
    usage >&2
    exit 2
fi

pages=${1:-$DEFAULT_PAGES}
mountpoint=${2:-$DEFAULT_MOUNTPOINT}

if ! [[ $pages =~ ^[0-9]{1,9}$ ]] || ((10#$pages == 0)); then
    die "PAGES must be a number from 1 to 999999999, not '$pages'"
fi
pages=$((10#$pages))
[[ $mountpoint == /* ]] || die "MOUNTPOINT must be an absolute path, not '$mountpoint'"
((EUID == 0)) || die "must run as root (it writes $NR_HUGEPAGES and mounts hugetlbfs)"
grep -qw hugetlbfs /proc/filesystems ||
    die "this kernel has no hugetlbfs (CONFIG_HUGETLBFS); run rvsd with EAL '--no-huge -m MB' instead"
[[ -w $NR_HUGEPAGES ]] ||
    die "this kernel offers no 2 MiB hugepages ($NR_HUGEPAGES is missing or read-only)"

reserved=$(<"$NR_HUGEPAGES")
if ((reserved >= pages)); then
    echo "hugepages: $reserved of 2 MiB already reserved (wanted $pages): nothing to do"
else
    # Free memory is fragmented over time; compacting first lets the kernel
    # find more contiguous 2 MiB blocks.
    sync
    echo 1 >/proc/sys/vm/compact_memory 2>/dev/null || true
    echo "$pages" >"$NR_HUGEPAGES"
    got=$(<"$NR_HUGEPAGES")
    if ((got < pages)); then
        die "asked for $pages hugepages of 2 MiB but the kernel could reserve only $got (now reserved); free memory (or run this early after boot), or ask for fewer pages"
    fi
    echo "hugepages: reserved $got of 2 MiB (was $reserved)"
fi

if awk -v dir="$mountpoint" '$2 == dir && $3 == "hugetlbfs" { found = 1 } END { exit !found }' /proc/mounts; then
    echo "hugetlbfs: already mounted at $mountpoint: nothing to do"
else
    mkdir -p "$mountpoint"
    mount -t hugetlbfs -o pagesize=2M nodev "$mountpoint"
    echo "hugetlbfs: mounted at $mountpoint"
fi
