#!/usr/bin/env bash
# Benchmark: the signed national directory (docs/directory-zones.md), with release builds.
#   scripts/bench-directory.sh
#   ROUNDS=20 scripts/bench-directory.sh
# 1. Load: ~3,400 generated agencies as signed zones (what a node loads now) and as the unsigned
#    directory.json of before (every certificate parsed at load), each in a fresh process: time,
#    resident memory added, peak; bytes of all zones and of one province zone.
# 2. Propagation, on the network of tests/tests/directory_zones.rs (real vdxd: a centre and two
#    provinces, communes as tenants): ROUNDS (default 20) times, province H41 enrols one more
#    commune (a new version of its zone, published on its own node); the time until the centre
#    and the other province hold it (p50, p95, max), and the bytes that moved (the zone file, once
#    per hop) against what the same change cost before zones (the entry, imported by hand at
#    every other node). Files under BENCH_DIR (default: a fresh directory under the target
#    directory's bench-directory/), removed unless BENCH_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
(($# == 0)) || { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
rounds=${ROUNDS:-20}
target=${CARGO_TARGET_DIR:-$PWD/target}

echo "== 1. load (one process each)"
cargo build -q --release -p vdx-pki --example directory_scale >&2
"$target/release/examples/directory_scale" | head -1
"$target/release/examples/directory_scale" pilot | head -1

echo "== 2. propagation over $rounds rounds"
cargo build -q --release -p vdx-ops -p vdx-node >&2
bin=$target/release
dir=${BENCH_DIR:-$target/bench-directory/run-$$}
mkdir -p "$dir" && cd "$dir"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; if [[ ${BENCH_KEEP:-0} != 1 ]]; then rm -rf "$dir"; fi' EXIT
vdx() { "$bin/vdx" "$@"; }
G22=000.00.00.G22 H41=000.00.00.H41 H26=000.00.00.H26
vdx pki init-ca --out ca --name "Bench Root" >/dev/null
for a in "root $G22" "h41 $H41" "h26 $H26"; do
    set -- $a
    vdx pki issue --ca ca --profile directory --org "$2" --name "Authority $2" --out "auth-$1" >/dev/null
done
port=$((20000 + RANDOM % 20000))
init() { # home org [source]
    vdx --home "$1" init --org "$2" --name "$1" --listen "127.0.0.1:$((port++))" --ca ca \
        --root-authority auth-root/directory.pem ${3:+--zone-source "$3"} >/dev/null
}
init g22 $G22
init h41 $H41 $G22
init h26 $H26 $G22
export_entry() { vdx --home "$1" --tenant "$2" directory export >"$2.json"; }
for n in g22:$G22 h41:$H41 h26:$H26; do export_entry "${n%%:*}" "${n#*:}"; done
vdx directory sign --authority auth-root --zone root --version 1 --max-classification mat \
    --delegate "$H41=auth-h41/directory.pem" --delegate "$H26=auth-h26/directory.pem" \
    --out root.zone $G22.json $H41.json $H26.json >/dev/null
vdx directory sign --authority auth-h41 --zone $H41 --version 1 --max-classification mat \
    --out h41-1.zone $H41.json >/dev/null
vdx directory sign --authority auth-h26 --zone $H26 --version 1 --max-classification mat \
    --out h26-1.zone $H26.json >/dev/null
for h in g22 h41 h26; do
    "$bin/vdxd" --home $h 2>>$h.log &
    pids+=($!)
done
for h in g22 h41 h26; do
    until [[ -S $h/vdxd.sock ]] && vdx --home $h directory status >/dev/null 2>&1; do sleep 0.02; done
    vdx --home $h directory publish root.zone >/dev/null
done
vdx --home h41 directory publish h41-1.zone >/dev/null
vdx --home h26 directory publish h26-1.zone >/dev/null
holds() { # home zone version
    vdx --home "$1" directory status --json |
        python3 -c "import json,sys; z={x['zone']:x['version'] for x in json.load(sys.stdin)['zones']}; sys.exit(0 if z.get('$2',0)>=$3 else 1)"
}
for h in g22 h26; do until holds $h $H41 1 && holds $h $H26 1; do sleep 0.05; done; done
until holds h41 $H26 1; do sleep 0.05; done

zone_bytes=0 entry_bytes=0
for ((r = 1; r <= rounds; r++)); do
    code=$(printf '000.%02d.41.H41' "$r")
    vdx --home h41 tenant add --org "$code" --name "Xã $r" --ca ca >/dev/null
    export_entry h41 "$code"
    v=$((r + 1))
    vdx directory sign --authority auth-h41 --zone $H41 --version $v --max-classification mat \
        --base "h41-$r.zone" --out "h41-$v.zone" "$code.json" >/dev/null
    vdx --home h41 directory publish "h41-$v.zone" >/dev/null
    until holds g22 $H41 $v && holds h26 $H41 $v; do sleep 0.05; done
    zone_bytes=$(stat -c %s "h41-$v.zone")
    entry_bytes=$(stat -c %s "$code.json")
done
# The times come from the daemons' logs: when H41's node took up each version (published) and
# when the others did, so that polling does not count.
python3 - "$rounds" "$zone_bytes" "$entry_bytes" <<'EOF'
import re, sys
from datetime import datetime
rounds, zone, entry = map(int, sys.argv[1:])
def taken(home):
    out = {}
    for line in open(f"{home}.log"):
        m = re.match(r"(\S+Z) .*directory zone taken up zone=000\.00\.00\.H41 version=(\d+)", line)
        if m:
            out[int(m[2])] = datetime.fromisoformat(m[1].replace("Z", "+00:00")).timestamp()
    return out
published = taken("h41")
def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]
for home, node in [("g22", "centre (1 hop)"), ("h26", "other province (2 hops)")]:
    got = taken(home)
    xs = [(got[v] - published[v]) * 1000 for v in range(2, rounds + 2)]
    print(f"{node}: p50 {pct(xs, .5):.1f} ms, p95 {pct(xs, .95):.1f} ms, max {max(xs):.1f} ms "
          f"after the publishing node took it up, over {len(xs)} enrolments")
print(f"bytes per enrolment (last round, {rounds + 1} entries in the zone): zone file {zone} B "
      f"x 2 hops = {2 * zone} B on the wire; before zones: the {entry} B entry imported by hand at "
      f"each of the 2 other nodes = {2 * entry} B, and an operator at each")
EOF
