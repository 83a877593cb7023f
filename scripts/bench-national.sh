#!/usr/bin/env bash
# Benchmark: the national shape on this machine, with release builds and real daemons.
#   scripts/bench-national.sh                      # 34 provinces x 98 communes = 3,332 tenants
#   PROVINCES=34 COMMUNES=10 SIZE=102400 scripts/bench-national.sh
# One central node and PROVINCES province nodes (real vdxd), each province hosting COMMUNES
# commune tenants, on a signed directory (a root zone with a delegation per province, a zone per
# province, every node handed the root zone and each province publishing its own). The centre
# sends one circular of SIZE bytes (default 100 KiB) to every commune: one dispatch, sealed once,
# one fan-out object per province (docs/broadcast.md). Reports: the time until the directory is
# everywhere, until the circular is queued and until every delivery receipt is back at the centre;
# objects and bytes the centre handed to each province (its metrics); peak RSS per daemon; CPU
# seconds of all daemons. Files under BENCH_DIR (default: a fresh directory under the target
# directory's bench-national/), removed unless BENCH_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
(($# == 0)) || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
provinces=${PROVINCES:-34} communes=${COMMUNES:-98} size=${SIZE:-102400}
target=${CARGO_TARGET_DIR:-$PWD/target}
cargo build -q --release -p vdx-ops -p vdx-node >&2
bin=$target/release
dir=${BENCH_DIR:-$target/bench-national/run-$$}
mkdir -p "$dir" && cd "$dir"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; if [[ ${BENCH_KEEP:-0} != 1 ]]; then rm -rf "$dir"; fi' EXIT
vdx() { "$bin/vdx" "$@"; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
G22=000.00.00.G22
province() { printf '000.00.00.H%02d\n' $((10 + $1)); }
commune() { printf '000.%02d.%02d.H%02d\n' $(($2 / 50 + 1)) $(($2 % 50 + 1)) $((10 + $1)); }
port=$((20000 + RANDOM % 20000))

t0=$(now)
vdx pki init-ca --out ca --name "Bench Root" >/dev/null
vdx pki issue --ca ca --profile directory --org $G22 --name "Root authority" --out auth-root >/dev/null
init() { # home code [source]
    vdx --home "$1" init --org "$1" --name "$1" --listen "127.0.0.1:$((port++))" --ca ca \
        --root-authority auth-root/directory.pem ${2:+--zone-source "$2"} >/dev/null
    vdx --home "$1" --tenant "$1" directory export >"$1.json"
}
init $G22
# Every node of this simulation connects from 127.0.0.1: the centre's per-address limits, meant
# for one peer per address, are raised to let all the provinces in (two connections each: the
# outbox's and the zone exchange's).
sed -i -e 's/^max_handshakes_per_ip = .*/max_handshakes_per_ip = 128/' \
    -e 's/^max_connections_per_ip = .*/max_connections_per_ip = 256/' \
    -e 's/^max_handshakes = .*/max_handshakes = 256/' \
    -e 's/^retry_from_handshakes = .*/retry_from_handshakes = 256/' $G22/config.toml
delegations=()
for ((p = 0; p < provinces; p++)); do
    code=$(province $p)
    vdx pki issue --ca ca --profile directory --org "$code" --name "Authority $code" --out "auth-$code" >/dev/null
    init "$code" $G22
    delegations+=(--delegate "$code=auth-$code/directory.pem")
    entries=("$code.json")
    for ((c = 0; c < communes; c++)); do
        x=$(commune $p $c)
        vdx --home "$code" tenant add --org "$x" --name "Xã $x" --ca ca >/dev/null
        vdx --home "$code" --tenant "$x" directory export >"$x.json"
        entries+=("$x.json")
    done
    vdx directory sign --authority "auth-$code" --zone "$code" --version 1 \
        --max-classification mat --out "$code.zone" "${entries[@]}" >/dev/null
done
vdx directory sign --authority auth-root --zone root --version 1 --max-classification mat \
    "${delegations[@]}" --out root.zone $G22.json $(for ((p = 0; p < provinces; p++)); do echo "$(province $p).json"; done) >/dev/null
echo "setup: $((provinces + 1)) homes, $((provinces * communes)) commune tenants, $((provinces + 1)) zones signed in $(since "$t0") s"

homes=($G22 $(for ((p = 0; p < provinces; p++)); do province $p; done))
for h in "${homes[@]}"; do
    "$bin/vdxd" --home "$h" 2>>"$h.log" &
    pids+=($!)
done
for h in "${homes[@]}"; do
    until [[ -S $h/vdxd.sock ]] && vdx --home "$h" directory status >/dev/null 2>&1; do sleep 0.05; done
done
t_zones=$(now)
for h in "${homes[@]}"; do vdx --home "$h" directory publish root.zone >/dev/null; done
for ((p = 0; p < provinces; p++)); do
    code=$(province $p)
    vdx --home "$code" directory publish "$code.zone" >/dev/null
done
zones() { vdx --home "$1" directory status --json | python3 -c "import json,sys; print(len(json.load(sys.stdin)['zones']))"; }
until (($(zones $G22) == provinces + 1)); do sleep 0.2; done
echo "directory: every zone at the centre $(since "$t_zones") s after the first publish"

head -c "$size" /dev/urandom >circular.bin
t_send=$(now)
args=(--home $G22 send --json --subject "Chỉ thị" --number 1 --notation CT-TTg --urgency khan)
for ((p = 0; p < provinces; p++)); do
    for ((c = 0; c < communes; c++)); do args+=(--to "$(commune $p $c)"); done
done
vdx "${args[@]}" circular.bin >sent.json
echo "circular: one dispatch to $((provinces * communes)) communes sealed and queued $(since "$t_send") s after submitting"
summary() {
    vdx --home $G22 outbox --json | python3 -c '
import json, sys
copies = json.load(sys.stdin)
done = sum(1 for c in copies if c["status"] == "delivered")
print(done, len(copies))'
}
while read -r done total < <(summary); ((done < total)); do sleep 1; done
echo "receipts: every delivery receipt back at the centre $(since "$t_send") s after submitting"
vdx --home $G22 metrics | python3 -c '
import re, sys
sent = {}
for line in sys.stdin:
    m = re.match(r"vdx_handover_(bytes|objects)_total[{]peer=.([^\x22]+).[}] (\S+)", line)
    if m:
        sent.setdefault(m[2], {})[m[1]] = float(m[3])
objects = sum(v.get("objects", 0) for v in sent.values())
total = sum(v.get("bytes", 0) for v in sent.values())
links = [v.get("bytes", 0) for v in sent.values()] or [0]
print(f"centre sent {objects:.0f} objects, {total:.0f} bytes ({total / 1048576:.1f} MiB) over {len(sent)} links; "
      f"per link to a province: {min(links):.0f}-{max(links):.0f} bytes")'
python3 -c '
import json
copies = json.load(open("sent.json"))["copies"]
size = max(c["size"] for c in copies)
print(f"one commune copy: {size} bytes; {len(copies)} copies recorded at the centre")'
rss=() cpu=0
tick=$(getconf CLK_TCK)
for i in "${!pids[@]}"; do
    pid=${pids[$i]}
    rss+=($(awk '$1 == "VmHWM:" {print $2}' /proc/$pid/status))
    cpu=$((cpu + $(awk '{print $14 + $15}' /proc/$pid/stat)))
done
python3 - "$tick" "$cpu" "${rss[@]}" <<'EOF'
import sys
tick, cpu, rss = int(sys.argv[1]), int(sys.argv[2]), [int(x) for x in sys.argv[3:]]
print(f"peak RSS: centre {rss[0] / 1024:.1f} MiB, provinces {min(rss[1:]) / 1024:.1f}-{max(rss[1:]) / 1024:.1f} MiB; "
      f"CPU of all daemons {cpu / tick:.1f} s")
EOF
