#!/usr/bin/env bash
# Benchmark: one host serving many agencies (tenants), with real release binaries.
#   scripts/bench-tenants.sh
#   TENANTS=100 DISPATCHES=2000 scripts/bench-tenants.sh
# For 1, 10 and TENANTS (default 100) tenants: vdxd's start time (until its socket answers),
# its RSS once idle (5 s after start) and its peak RSS; from those, RSS per added tenant. Then,
# with all tenants, DISPATCHES (default 1000) dispatches between two tenants of the host (sealed,
# handed over without the network, opened, numbered, receipted: every entry in both ledgers) and
# the ledger's cost on disk: bytes of the metadata store per ledger entry, against the entries'
# own bytes (the text `vdx audit export` writes); the ledger alone is measured by bench-ledger.sh. Files under BENCH_DIR (default: a fresh
# directory under the target directory's bench-tenants/), removed unless BENCH_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
(($# == 0)) || { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
tenants=${TENANTS:-100} dispatches=${DISPATCHES:-1000}
target=${CARGO_TARGET_DIR:-$PWD/target}
cargo build -q --release -p vdx-ops -p vdx-node >&2
bin=$target/release
dir=${BENCH_DIR:-$target/bench-tenants/run-$$}
mkdir -p "$dir" && cd "$dir"
pid=
trap 'if [[ -n $pid ]]; then kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; fi; if [[ ${BENCH_KEEP:-0} != 1 ]]; then rm -rf "$dir"; fi' EXIT
vdx() { "$bin/vdx" "$@"; }
code() { printf '%03d.%02d.41.H41\n' $(($1 / 100)) $(($1 % 100)); }
port=$((20000 + RANDOM % 20000))
vdx pki init-ca --out ca --name "Bench Root" >/dev/null
vdx --home host init --org 000.00.00.H41 --name "UBND tỉnh" --listen 127.0.0.1:$port --ca ca >/dev/null

start() {
    local t0 t1
    t0=$(date +%s.%N)
    "$bin/vdxd" --home host 2>>host.log &
    pid=$!
    until vdx --home host tenant list >/dev/null 2>&1 && [[ -S host/vdxd.sock ]]; do sleep 0.02; done
    t1=$(date +%s.%N)
    start_ms=$(echo "($t1 - $t0) * 1000" | bc)
}
stop() { kill $pid; wait $pid 2>/dev/null || true; pid=; }
kib() { awk -v k="$1" '$1 == k":" {print $2}' /proc/$pid/status; }

declare -A rss
added=1
printf '| tenants | start | idle RSS | peak RSS |\n|---:|---:|---:|---:|\n'
for n in 1 10 "$tenants"; do
    while ((added < n)); do
        vdx --home host tenant add --org "$(code $added)" --name "Xã $added" --ca ca --clerk "$(id -u)" --officer "$(id -u)" >/dev/null
        added=$((added + 1))
    done
    start
    sleep 5
    rss[$n]=$(kib VmRSS)
    printf '| %d | %.0f ms | %.1f MiB | %.1f MiB |\n' "$n" "$start_ms" "$(echo "${rss[$n]} / 1024" | bc -l)" "$(echo "$(kib VmHWM) / 1024" | bc -l)"
    ((n == tenants)) || stop
done
per=$(echo "(${rss[$tenants]} - ${rss[1]}) / ($tenants - 1)" | bc -l)
printf '\nRSS per added tenant: %.0f KiB\n' "$per"

# Dispatches between two tenants of the host, then the ledger's bytes.
from=$(code 1) to=$(code 2)
printf 'Công văn thử nghiệm số %s\n' 1 > cv.txt
t0=$(date +%s.%N)
for i in $(seq 1 "$dispatches"); do
    vdx --home host --tenant "$from" send --to "$to" --subject "V/v thử $i" --number "$i" --notation UBND cv.txt >/dev/null
done
until [[ $(vdx --home host --tenant "$from" outbox --json | grep -o '"status": "delivered"' | wc -l) -ge $dispatches ]]; do sleep 0.5; done
t1=$(date +%s.%N)
printf '%d dispatches between two tenants of the host, delivered and receipted: %.1f s (%.0f/s, one clerk command each)\n' \
    "$dispatches" "$(echo "$t1 - $t0" | bc)" "$(echo "$dispatches / ($t1 - $t0)" | bc -l)"
stop
entries=0 entry_bytes=0
for t in 000.00.00.H41 $(for i in $(seq 1 $((tenants - 1))); do code $i; done); do
    vdx --home host --tenant "$t" audit export --out "bundle-$t" >/dev/null
    read -r n b < <(awk '/^length /{n++; b += $2} END {print n + 0, b + 0}' "bundle-$t/entries")
    entries=$((entries + n)) entry_bytes=$((entry_bytes + b))
done
meta=$(du -sb host/data/meta | cut -f1)
printf 'ledger: %d entries, %d bytes of entry text (%.0f B each); the whole metadata store (records, headers, sealed objects up to 64 KiB, ledger; 100 tenants'"'"' trees) on disk %d bytes: %.0f B per ledger entry (%.1f× the entry)\n' \
    "$entries" "$entry_bytes" "$(echo "$entry_bytes / $entries" | bc -l)" "$meta" "$(echo "$meta / $entries" | bc -l)" "$(echo "$meta / $entry_bytes" | bc -l)"
