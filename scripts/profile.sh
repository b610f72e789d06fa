#!/usr/bin/env bash
# Profiles a command (by default a 30-step tracked `eosbench train` on cifar10-5k) with perf's
# DWARF call graphs and writes into OUT (default results/profile/<UTC time>/):
#   perf.data       the samples (perf report -i OUT/perf.data)
#   top.txt         the 25 hottest functions by self time
#   callers.txt     the same with their call chains (caller order, 2 % cut-off)
#   stacks.folded   folded stacks, and flamegraph.svg from them (with inferno installed:
#                   cargo install inferno)
#
#   scripts/profile.sh [--out DIR] [--freq HZ] [-- COMMAND...]
#   scripts/profile.sh -- target/release/eosbench --threads 1 sharpness --preset fc-tanh
#
# Needs perf (Debian: linux-perf). Without hardware counters (virtual machines) perf samples
# the cpu-clock software event, which is what this script asks for anyway.
#
# What it can and cannot show: self time per function is exact, GEMM micro-kernels included
# (top.txt). But the samples inside the AVX2 micro-kernels of faer's GEMM (`gemm_v0_gemm_
# microkernel_*`, assembly) carry no callers: those kernels have no unwind tables and use rbp
# as a general register, so neither DWARF nor frame-pointer unwinding (a build with
# RUSTFLAGS="-C force-frame-pointers=yes" and `perf record --call-graph fp`) gets past them, and
# pprof's in-process sampler returns those samples with empty stacks. Which product of which
# layer they belong to takes the phase timers (cargo run --release --example phases).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
out=""
freq=250
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --freq) freq="$2"; shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
command -v perf >/dev/null || { echo "error: perf not found (Debian: apt install linux-perf)" >&2; exit 1; }
out="${out:-$root/results/profile/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
if [ $# -eq 0 ]; then
    (cd "$root" && cargo build --release -q)
    set -- "$root/target/release/eosbench" --threads "$(nproc)" train --preset fc-tanh \
        --dataset cifar10-5k --lr 2/200 --eig-every 1 --max-steps 30 \
        --results "$out" --experiment run
fi
echo "profiling: $*" >&2
perf record -e cpu-clock -F "$freq" --call-graph dwarf,16384 -o "$out/perf.data" -- "$@" >&2
perf report -i "$out/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null \
    | grep -v -e '^#' -e '^$' | sed -n '1,25p' > "$out/top.txt"
perf report -i "$out/perf.data" --no-children --sort symbol --stdio -g caller,0.02,callee \
    2>/dev/null > "$out/callers.txt"
if command -v inferno-collapse-perf >/dev/null && command -v inferno-flamegraph >/dev/null; then
    perf script -i "$out/perf.data" 2>/dev/null | inferno-collapse-perf > "$out/stacks.folded"
    inferno-flamegraph --title "$(basename "$1") ${*:2}" < "$out/stacks.folded" > "$out/flamegraph.svg"
    echo "flamegraph: $out/flamegraph.svg" >&2
else
    echo "note: no flamegraph (cargo install inferno for inferno-collapse-perf and inferno-flamegraph)" >&2
fi
echo "top frames by self time ($out/top.txt):" >&2
head -10 "$out/top.txt" >&2
