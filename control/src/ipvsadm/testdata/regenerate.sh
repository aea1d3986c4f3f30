#!/usr/bin/env bash
# Prints the golden listings of this folder again with the real ipvsadm
# (Debian's ipvsadm 1:1.31), which talks to a fake IPVS (ipvs-fake.c,
# preloaded) instead of the kernel. Needs root (for the private /etc/hosts)
# and: apt-get install ipvsadm gcc
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -shared -fPIC -O1 -o "$work/fake.so" "$here/ipvs-fake.c" -ldl

# The table of format::tests::golden_table().
cat >"$work/golden.txt" <<'TABLE'
svc tcp 198.18.0.10 80 rr 0 0 255.255.255.255 12 345 300 45678 123456789 1 20 18 2500 300000
dest 198.18.1.12 80 0 1 0 0 3 7 0 6 200 180 30000 99999999 0 10 9 1000 150000
dest 198.18.1.11 8080 0 1 100 50 2 5 1 6 145 120 15678 23456790 1 10 9 1500 150000
svc udp 198.18.0.10 53 sh 0x19 600 255.255.255.0 99999999 100000000 999999999 1000000000 99999999999 100000000 100000000 100000000 100000000 4294967295
dest 198.18.1.11 53 3 65535 100 50 0 0 4 4294967295 1000000000 99999999 1000000000000 100000000000000 100000000 100000000 100000000 100000000 100000000
svc tcp 198.18.100.200 65535 mh 0x28 0 255.255.255.255 0 0 0 0 0 0 0 0 0 0
dest 198.18.200.222 65535 2 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
svc tcp 198.18.0.11 443 wlc 0x38 0 255.255.255.255 0 0 0 0 0 0 0 0 0 0
TABLE
# The table of format::tests::hosts_table(), with its hosts file.
cat >"$work/hosts-table.txt" <<'TABLE'
svc tcp 198.18.0.10 80 rr 0 0 255.255.255.255 0 0 0 0 0 0 0 0 0 0
dest 198.18.1.11 8080 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
dest 127.0.0.1 80 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
svc tcp 198.18.0.12 443 rr 0x1 300 255.255.255.255 0 0 0 0 0 0 0 0 0 0
dest 198.18.1.11 443 3 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
TABLE
cat >"$work/hosts" <<'HOSTS'
127.0.0.1 localhost
198.18.0.10 vip.example
198.18.1.11 a-really-long-real-server-name.example.org rs1
198.18.0.12 an-even-longer-virtual-service-name.example.org
HOSTS
# The connections both tables' listings show (-c), in the kernel's
# /proc/net/ip_vs_conn format; the last one is a persistence template.
cat >"$work/conns.txt" <<'CONNS'
Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
TCP C6120002 9C40 C612000A 0050 C612010C 0050 ESTABLISHED     899
TCP C6120003 9C41 C612000A 0050 C612010B 1F90 TIME_WAIT        59
TCP C6120004 A028 C612000A 0050 C612010B 1F90 SYN_RECV         60
UDP C6120002 9C42 C612000A 0035 C612010B 0035 UDP             299
TCP C6120003 9C43 C612000A 0050 C612010C 0050 ESTABLISHED    7199
TCP fd00:0000:0000:0000:0000:0000:0000:0002 A029 fd00:0000:0000:0000:0000:0000:0000:0010 0050 fd00:0001:0000:0000:0000:0000:0000:0011 0050 FIN_WAIT        119
TCP fd00:1234:5678:9abc:def0:1234:5678:9abc A02A fd00:0000:0000:0000:0000:0000:0000:0010 0050 fd00:0001:0000:0000:0000:0000:0000:0012 1F90 ESTABLISHED     900
UDP C6120000 0000 C612000A 0035 C612010B 0035 NONE            600
CONNS

ipvsadm_with() { # HOSTS ARGS...: ipvsadm in a mount namespace with HOSTS as /etc/hosts
    local hosts=$1
    shift
    # shellcheck disable=SC2016 # expanded by the inner shell
    unshare -m sh -c 'mount --bind "$0" /etc/hosts && exec ipvsadm "$@"' "$hosts" "$@" \
        </dev/null | cat
}
export LD_PRELOAD=$work/fake.so FAKE_IPVS_CONN=$work/conns.txt
golden() { FAKE_IPVS=$work/golden.txt ipvsadm_with /etc/hosts "$@"; }
hosts() { FAKE_IPVS=$work/hosts-table.txt ipvsadm_with "$work/hosts" "$@"; }

golden -Ln >"$here/list.txt"
golden -L >"$here/list-names.txt"
golden -Ln --stats >"$here/list-stats.txt"
golden -Ln --stats --exact >"$here/list-stats-exact.txt"
golden -Ln --rate >"$here/list-rate.txt"
golden -Ln --rate --exact >"$here/list-rate-exact.txt"
golden -Ln --thresholds >"$here/list-thresholds.txt"
golden -Ln --persistent-conn >"$here/list-persistent-conn.txt"
golden -Ln --tun-info >"$here/list-tun-info.txt"
golden -Ln -t 198.18.0.10:80 --thresholds >"$here/list-one-service.txt"
golden -Lnc >"$here/list-connections.txt"
golden -Lnc --persistent-conn >"$here/list-connections-persistent-conn.txt"
golden -Sn >"$here/save-numeric.txt"
golden -S >"$here/save-names.txt"
hosts -L >"$here/list-hosts.txt"
hosts -L --stats >"$here/list-hosts-stats.txt"
hosts -S >"$here/save-hosts.txt"
hosts -Lc >"$here/list-connections-hosts.txt"
