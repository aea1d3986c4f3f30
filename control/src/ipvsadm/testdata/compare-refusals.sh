#!/usr/bin/env bash
# Runs every line of refused-command-lines.txt through the real ipvsadm
# (on the fake IPVS of ipvs-fake.c) and through rvsadm, and reports any
# difference in what they print on stderr or in their exit status.
# Usage: compare-refusals.sh PATH-TO-RVSADM   (needs: apt-get install ipvsadm gcc)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rvsadm=$(realpath "${1:?usage: $0 PATH-TO-RVSADM}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -shared -fPIC -O1 -o "$work/fake.so" "$here/ipvs-fake.c" -ldl
: >"$work/empty.txt"
total=0 differ=0
while IFS= read -r line; do
    total=$((total + 1))
    read -ra words <<<"$line"
    expected=$(FAKE_IPVS=$work/empty.txt LD_PRELOAD=$work/fake.so ipvsadm "${words[@]}" 2>&1 >/dev/null) && status=0 || status=$?
    # argv[0] "ipvsadm", so that messages naming the program agree.
    actual=$(RVS_SOCKET=/nonexistent bash -c 'exec -a ipvsadm "$0" "$@"' "$rvsadm" "${words[@]}" 2>&1 >/dev/null) && got=0 || got=$?
    if [[ "$expected|$status" != "$actual|$got" ]]; then
        differ=$((differ + 1))
        printf 'ipvsadm %s\n  ipvsadm [%s]: %s\n  rvsadm  [%s]: %s\n' "$line" "$status" "$expected" "$got" "$actual"
    fi
done <"$here/refused-command-lines.txt"
echo "$total command lines, $differ differ"
((differ == 0))
