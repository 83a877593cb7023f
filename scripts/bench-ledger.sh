#!/usr/bin/env bash
# Benchmark: the node's tamper-evident ledger, then `vdx audit verify` of its exported bundle.
#   scripts/bench-ledger.sh
# Builds `vdx` (release), runs `cargo bench -p vdx-tests --bench ledger` (tests/benches/ledger.rs
# documents every knob: durable appends by 1/16/64 threads, fill to LEDGER_ENTRIES = 1,000,000,
# inclusion and consistency proofs, export of a bundle with signed checkpoints), then times
# `vdx audit verify BUNDLE --ca CA` (wall time, peak RSS) and appends it to the bench's table.
# The environment passes through, e.g.
#   LEDGER_ENTRIES=100000 BENCH_APPEND_SECS=2 scripts/bench-ledger.sh
# Files on disk under BENCH_DIR (default: a fresh directory under the target directory's
# bench-ledger/, removed at the end unless BENCH_KEEP=1; a BENCH_DIR given is kept). If vdx does
# not build, the ledger phases still run and the table says that verify was skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
(($# == 0)) || { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

target=${CARGO_TARGET_DIR:-$PWD/target}
if [[ -n ${BENCH_DIR:-} ]]; then
    dir=$BENCH_DIR keep=1
else
    dir=$target/bench-ledger/run-$$-$(date +%s) keep=${BENCH_KEEP:-0}
fi
table=$(mktemp)
# A failed run keeps its files, as the benchmark itself does.
trap 'status=$?; rm -f "$table"; if ((keep != 1 && status == 0)); then rm -rf "$dir"; else echo "bench: files kept in $dir" >&2; fi' EXIT

vdx=$target/release/vdx
if cargo build -q --release -p vdx-ops >&2; then
    verify=1
else
    verify=0
    echo "bench: vdx-ops does not build: audit verify will be skipped" >&2
fi
BENCH_DIR=$dir cargo bench -q -p vdx-tests --bench ledger >"$table"

rows=()
if ((verify == 1)); then
    echo "bench: vdx audit verify $dir/bundle --ca $dir/ca.pem" >&2
    sync # the bundle was just written: verify reads it, it does not wait for the disk
    start=$(date +%s%N)
    if [[ -x /usr/bin/time ]]; then
        status=0
        /usr/bin/time -v -o "$dir/verify.time" "$vdx" audit verify "$dir/bundle" --ca "$dir/ca.pem" \
            >"$dir/verify.out" 2>"$dir/verify.err" || status=$?
        end=$(date +%s%N)
        rss_kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$dir/verify.time")
    else
        # No GNU time: sample VmHWM of the running process (the last sample before it exits).
        "$vdx" audit verify "$dir/bundle" --ca "$dir/ca.pem" >"$dir/verify.out" 2>"$dir/verify.err" &
        pid=$! rss_kib=0
        while kill -0 "$pid" 2>/dev/null; do
            hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
            [[ -n $hwm ]] && rss_kib=$hwm
            sleep 0.02
        done
        status=0
        wait "$pid" || status=$?
        end=$(date +%s%N)
    fi
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", (b - a) / 1e9}')
    rss=$(awk -v k="${rss_kib:-0}" 'BEGIN {printf "%.0f", k / 1024}')
    ok=$(awk -v s="$secs" 'BEGIN {print (s < 10) ? "met" : "MISSED"}')
    if ((status == 0)); then
        result="$secs s; peak RSS $rss MiB ($(head -c 200 "$dir/verify.out" | tr '\n|' ' /'))"
    else
        result="FAILED (exit $status after $secs s): $(head -c 300 "$dir/verify.err" | tr '\n|' ' /')"
        ok=MISSED
    fi
    rows+=("| \`vdx audit verify\` of the bundle (\`--ca\`), wall time; peak RSS | $result | < 10 s: $ok |")
else
    rows+=("| \`vdx audit verify\` of the bundle | SKIPPED: \`cargo build --release -p vdx-ops\` failed | < 10 s |")
fi

cat "$table"
printf '%s\n' "${rows[@]}"
