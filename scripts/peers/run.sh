#!/usr/bin/env bash
# eosbench and its peers (PyTorch double backward, torch.func, JAX) on the same workloads, in
# interleaved rounds, then the merged table (scripts/peers/table.py).
#
#   scripts/peers/run.sh [--params FILE] [--n 5000] [--reps 10] [--threads "1 2"] [--out DIR]
#                        [--rounds 2] [--lr 0.01] [--impls "eosbench torch-double-backward ..."]
#                        [--ops loss,gradient,hvp] [--no-build]
#
#   --params   eosbench safetensors checkpoint (default: a fresh fc-tanh init, seed 0, written
#              to DIR/init.safetensors: the rising phase; pass a train checkpoint for the edge)
#   --n        first n CIFAR-10 training records (5000 = cifar10-5k)
#   --reps     timed repetitions per workload, per implementation and thread count, split over
#              the rounds
#   --threads  thread counts, space- or comma-separated; each runs pinned to cores 0..N-1
#   --rounds   rounds per thread count; round r runs every implementation once with its share
#              of the reps, so slow drifts of the machine hit all implementations alike
#   --out      results directory (default results/peers/<hostname>/<UTC time>)
#   --ops      only these workloads, comma-separated, on every side (default: all)
#   --no-build do not run cargo (use target/release/eosbench as it is)
#
# Data: $EOSBENCH_DATA, default ../shared/datasets/cifar-10-batches-bin relative to the repo
# root, for both sides. Python: $PEERS_PYTHON, default scripts/peers/.venv/bin/python (made by
# scripts/peers/setup.sh). OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for the benchmark
# commands only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

params=""
n=5000
reps=10
threads="1 2"
out=""
rounds=2
lr=0.01
impls="eosbench torch-double-backward torch-func jax"
ops=""
build=1

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
need() { [ $# -ge 2 ] || { echo "error: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case "$1" in
        --params) need "$@"; params="$2"; shift 2 ;;
        --n) need "$@"; n="$2"; shift 2 ;;
        --reps) need "$@"; reps="$2"; shift 2 ;;
        --threads) need "$@"; threads="$2"; shift 2 ;;
        --out) need "$@"; out="$2"; shift 2 ;;
        --rounds) need "$@"; rounds="$2"; shift 2 ;;
        --lr) need "$@"; lr="$2"; shift 2 ;;
        --impls) need "$@"; impls="$2"; shift 2 ;;
        --ops) need "$@"; ops="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

for v in n reps rounds; do
    if ! [[ ${!v} =~ ^[0-9]+$ ]] || [ "${!v}" -lt 1 ]; then
        echo "error: --$v must be a positive integer, got '${!v}'" >&2
        exit 2
    fi
done
[ "$rounds" -le "$reps" ] || rounds=$reps

cores=$(nproc)
thread_list=()
for t in ${threads//,/ }; do
    if ! [[ $t =~ ^[0-9]+$ ]] || [ "$t" -lt 1 ]; then
        echo "error: thread count '$t' is not a positive integer" >&2
        exit 2
    fi
    if [ "$t" -gt "$cores" ]; then
        echo "note: skipping $t threads: this machine has $cores cores" >&2
        continue
    fi
    thread_list+=("$t")
done
[ ${#thread_list[@]} -gt 0 ] || { echo "error: no usable thread count in '$threads'" >&2; exit 2; }

python="${PEERS_PYTHON:-$here/.venv/bin/python}"
if [ ! -x "$python" ]; then
    echo "error: no Python at $python; run scripts/peers/setup.sh first (or set PEERS_PYTHON)" >&2
    exit 1
fi

data="${EOSBENCH_DATA:-$root/../shared/datasets/cifar-10-batches-bin}"
[ -d "$data" ] || { echo "error: CIFAR-10 directory '$data' not found (set EOSBENCH_DATA)" >&2; exit 1; }
data="$(cd "$data" && pwd)"
export EOSBENCH_DATA="$data"

out="${out:-$root/results/peers/$(hostname)/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out/logs"
out="$(cd "$out" && pwd)"

cd "$root"
bin="$root/target/release/eosbench"
if [ "$build" = 1 ]; then
    echo "building eosbench (cargo build --release) ..." >&2
    if ! cargo build --release -q; then
        echo "warning: cargo build --release failed; using target/release/eosbench as it is" >&2
    fi
fi

if [ -z "$params" ]; then
    params="$out/init.safetensors"
    if [ "$build" = 1 ]; then
        cargo run --release -q -- init --preset fc-tanh --seed 0 --out "$params" >&2
    elif [ -x "$bin" ]; then
        "$bin" init --preset fc-tanh --seed 0 --out "$params" >&2
    else
        echo "error: no --params and no target/release/eosbench to make them (drop --no-build)" >&2
        exit 1
    fi
fi
[ -f "$params" ] || { echo "error: params file '$params' not found" >&2; exit 1; }
params="$(cd "$(dirname "$params")" && pwd)/$(basename "$params")"

if [ $((n % 1000)) -eq 0 ]; then dataset="cifar10-$((n / 1000))k"; else dataset="cifar10-$n"; fi

# Does this eosbench have the `ops` subcommand?
eosbench_ok=0
case " $impls " in
    *" eosbench "*)
        if [ ! -x "$bin" ]; then
            echo "NOTE: no target/release/eosbench; timing the peers only" >&2
        elif "$bin" ops --help >/dev/null 2>&1; then
            eosbench_ok=1
        else
            echo "NOTE: target/release/eosbench has no 'ops' subcommand yet" \
                "('eosbench ops --help' fails); timing the peers only, and table.py will" \
                "compare against torch-double-backward" >&2
        fi ;;
esac

{
    echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host:    $(hostname)"
    echo "kernel:  $(uname -srm)"
    echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "cores:   $cores"
    echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
    echo "params:  $params"
    echo "data:    $data ($dataset)"
    echo "threads: ${thread_list[*]}; reps $reps in $rounds round(s); lr $lr"
    echo "impls:   $impls (eosbench ops available: $eosbench_ok)"
    echo "python:  $python"
    echo "load before: $(cat /proc/loadavg)"
} >"$out/machine.txt"
cat "$out/machine.txt" >&2

failed=0
bench() {  # bench CORES CMD... : the benchmark environment
    local cpus="$1"
    shift
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE taskset -c "$cpus" "$@"
}

for t in "${thread_list[@]}"; do
    cpus="0-$((t - 1))"
    for ((r = 1; r <= rounds; r++)); do
        share=$((reps / rounds + (r <= reps % rounds ? 1 : 0)))
        for impl in $impls; do
            name="$impl.t$t.r$r"
            json="$out/$name.json"
            log="$out/logs/$name.log"
            [ "$impl" != eosbench ] || [ "$eosbench_ok" = 1 ] || continue
            echo "[threads $t, round $r/$rounds] $impl: $share rep(s) ..." >&2
            start=$(date +%s)
            if [ "$impl" = eosbench ]; then
                if ! bench "$cpus" "$bin" --threads "$t" --json ops --params "$params" \
                    --dataset "$dataset" --reps "$share" --lr "$lr" ${ops:+--ops "$ops"} \
                    >"$json.tmp" 2>"$log"; then
                    echo "  FAILED (see $log)" >&2
                    rm -f "$json.tmp"
                    failed=1
                    continue
                fi
                mv "$json.tmp" "$json"
            else
                if ! bench "$cpus" "$python" "$here/peers.py" --impl "$impl" --threads "$t" \
                    --params "$params" --data-dir "$data" --n "$n" --lr "$lr" --reps "$share" \
                    ${ops:+--ops "$ops"} --out "$json" 2>"$log"; then
                    echo "  FAILED (see $log)" >&2
                    failed=1
                    continue
                fi
            fi
            echo "  done in $(($(date +%s) - start)) s" >&2
        done
    done
done
echo "load after: $(cat /proc/loadavg)" >>"$out/machine.txt"

status=0
"$python" "$here/table.py" "$out" || status=$?
echo "results in $out (table.md, peers.json)" >&2
if [ "$failed" = 1 ]; then
    echo "error: some runs failed; see $out/logs" >&2
    exit 1
fi
exit "$status"
