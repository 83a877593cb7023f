#!/usr/bin/env bash
# Benchmark: delivery between two real vdxd daemons on loopback, through the local socket API.
#   scripts/bench-delivery.sh
# Runs `cargo bench -p vdx-tests --bench delivery` (tests/benches/delivery.rs documents every knob);
# the environment passes through, e.g.
#   BENCH_PHASES=latency,rate BENCH_DIR=/dev/shm scripts/bench-delivery.sh
#   BENCH_BIG_MIB=256 BENCH_RATE=200 BENCH_CONCURRENCY=16 scripts/bench-delivery.sh
# Phases, in this order (BENCH_PHASES, default all): latency (open loop, BENCH_RATE/s = 100 for
# BENCH_LATENCY_SECS = 10), big (one BENCH_BIG_MIB = 1024 MiB dispatch), rate (BENCH_CONCURRENCY = 8
# closed-loop submitters for BENCH_RATE_SECS = 12, then until all are delivered). Files on disk under
# BENCH_DIR (default: the target directory's bench-delivery/); BENCH_KEEP=1 keeps them and the logs.
# Prints latency percentiles, dispatches/s, MB/s (10^6 bytes of content), daemon CPU and RSS.
# Then the same work through NNCP (nncp-file, nncp-call, nncp-daemon -autotoss; scripts/install-deps.sh
# installs it) and a vdx | NNCP | ratio table; BENCH_NNCP=0, or no nncp-file on PATH, skips that side.
set -euo pipefail
cd "$(dirname "$0")/.."
(($# == 0)) || { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
exec cargo bench -q -p vdx-tests --bench delivery
