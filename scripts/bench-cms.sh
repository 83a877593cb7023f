#!/usr/bin/env bash
# Benchmark: seal and open with vdx beside the OpenSSL CLI doing the same work, in the same run.
#   scripts/bench-cms.sh [SIZE ...]      sizes as accepted by head -c (default: 1M 100M 1G)
# Reports the median of RUNS runs (default 3): MB/s (MB = 10^6 bytes of content) and peak RSS.
# For the OpenSSL pipelines the peak RSS is that of the larger of the two processes. The summary gives
# the speed ratios per size and the peak RSS of the largest size (the last one given).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
((${#sizes[@]})) || sizes=(1M 100M 1G)
runs=${RUNS:-3}
# Default: tmpfs, so that the numbers measure the software and not this machine's noisy disk
# (fsync on tmpfs is free; on disk both tools pay for it: vdx fsyncs, the OpenSSL runs end in `sync`).
# BENCH_DIR=target/bench measures on disk.
default_dir=target/bench
[[ -d /dev/shm && -w /dev/shm ]] && default_dir=/dev/shm/vdx-bench
work=${BENCH_DIR:-$default_dir}
[[ -x /usr/bin/time ]] || { echo "bench: GNU time missing: run scripts/install-deps.sh" >&2; exit 1; }

cargo build --release -q -p vdx-ops --bin vdx
vdx=$PWD/target/release/vdx
rm -rf "$work" && mkdir -p "$work" && cd "$work"
"$vdx" pki init-ca --out ca --name "Bench CA" >/dev/null
"$vdx" pki issue --ca ca --org 000.00.00.G22 --name Sender --out s >/dev/null
"$vdx" pki issue --ca ca --org 000.00.00.H41 --name Recipient --out r >/dev/null

# measure COMMAND...: runs it $runs times (each time $repeat times in a row, so that small sizes
# are not lost in the cost of starting the timer), prints "seconds kib" of the median run by time
# (wall clock in nanoseconds around the command; peak RSS from GNU time).
measure() {
  local results=() start end
  for ((i = 0; i < runs; i++)); do
    sync
    start=$(date +%s%N)
    /usr/bin/time -f '%M' -o t.txt bash -c 'for ((k = 0; k < REPEAT; k++)); do "$@" || exit 1; done' \
      _ "$@" >/dev/null 2>err.txt || { cat err.txt >&2; exit 1; }
    end=$(date +%s%N)
    results+=("$(awk -v a="$start" -v b="$end" -v r="$repeat" 'BEGIN { printf "%.5f", (b - a) / 1e9 / r }') $(tail -1 t.txt)")
  done
  printf '%s\n' "${results[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p"
}

bytes_of() { stat -c %s "$1"; }
: > table.md
summary=()
for size in "${sizes[@]}"; do
  head -c "$size" /dev/urandom > doc
  n=$(bytes_of doc)
  repeat=$(( n >= 64000000 ? 1 : 64000000 / n ))
  ((repeat <= 50)) || repeat=50
  export REPEAT=$repeat
  row() { # tool op "seconds kib"
    local secs=${3% *} kib=${3#* }
    local mbs
    mbs=$(awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s / 1e6 : 0) }')
    echo "| $size | $1 | $2 | $mbs | $((kib / 1024)) |" >> table.md
    echo "$mbs $((kib / 1024))"
  }
  vs=$(row vdx seal "$(measure "$vdx" seal --cert s/sign.pem --key s/sign.key --to r/enc.pem -o v.p7m doc)")
  os=$(row openssl seal "$(measure sh -c 'openssl cms -sign -stream -binary -nodetach -outform DER -signer s/sign.pem -inkey s/sign.key -in doc | openssl cms -encrypt -stream -binary -aes-256-gcm -outform DER -out o.p7m r/enc.pem && sync o.p7m')")
  vo=$(row vdx open "$(measure "$vdx" open --cert r/enc.pem --key r/enc.key --trust ca/ca.pem -o v.out o.p7m)")
  oo=$(row openssl open "$(measure sh -c 'openssl cms -decrypt -inform DER -in v.p7m -recip r/enc.pem -inkey r/enc.key | openssl cms -verify -inform DER -CAfile ca/ca.pem -out o.out && sync o.out')")
  cmp -s v.out doc && cmp -s o.out doc || { echo "bench: content mismatch at $size" >&2; exit 1; }
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
  summary+=("seal ($size): vdx ${vs% *} MB/s vs openssl ${os% *} MB/s ($(ratio "${vs% *}" "${os% *}")x, target >= 1x)")
  summary+=("open ($size): vdx ${vo% *} MB/s vs openssl ${oo% *} MB/s ($(ratio "${vo% *}" "${oo% *}")x, target >= 4x)")
  rss_line="peak RSS at $size: seal ${vs#* } MiB, open ${vo#* } MiB (target < 64; openssl: seal ${os#* } MiB, open ${oo#* } MiB)"
  rm -f doc v.p7m o.p7m v.out o.out
done

echo
echo "vdx vs OpenSSL CLI ($(openssl version | cut -d' ' -f1-2)), $(nproc) cores, median of $runs, files in $work"
echo
echo "| size | tool | op | MB/s | peak RSS MiB |"
echo "|---|---|---|---:|---:|"
cat table.md
echo
printf '%s\n' "${summary[@]}" "$rss_line"
cd - >/dev/null && rm -rf "$work"
