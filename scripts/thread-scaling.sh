#!/usr/bin/env bash
# Thread scaling of the kernels at the Figure-1 shape (fc-tanh, h = 200, n = 5000): the FMA
# peak, loss, gradient, HVP b = 1 and b = 4, the third-order product and the roof GEMMs at every
# thread count, then the dated table with the speed-up over one thread at each count
# (scripts/kernels-table.py).
#
#   scripts/thread-scaling.sh [THREADS] [OUT]
#
#   THREADS  comma-separated thread counts (default 1,2,4,8,12,16, cut to this machine's cores)
#   OUT      directory for table.md, medians.csv, bench.log and this run's criterion data
#            (default results/kernels/threads-<UTC time>)
#
# On a machine without cargo, build here (`cargo bench --bench kernels --no-run`) and point
# EOSBENCH_KERNELS_BENCH at the binary it names. Each benchmark gets 0.5 s of warm-up and 2 s of
# measurement: about a minute per thread count at h = 200.
set -euo pipefail
cd "$(dirname "$0")/.."

cores=$(nproc)
threads=${1:-1,2,4,8,12,16}
out=${2:-results/kernels/threads-$(date -u +%Y%m%dT%H%M%SZ)}

# Keep the counts this machine can run without oversubscription.
kept=()
IFS=, read -ra asked <<<"$threads"
for t in "${asked[@]}"; do
    if ! [[ $t =~ ^[0-9]+$ ]] || [ "$t" -lt 1 ]; then
        echo "error: thread count '$t' is not a positive integer (THREADS=$threads)" >&2
        exit 2
    fi
    if [ "$t" -le "$cores" ]; then
        kept+=("$t")
    else
        echo "note: skipping $t threads: this machine has $cores cores" >&2
    fi
done
if [ ${#kept[@]} -eq 0 ]; then
    echo "error: none of THREADS=$threads fits this machine's $cores cores" >&2
    exit 2
fi
list=$(IFS=,; echo "${kept[*]}")

bench=${EOSBENCH_KERNELS_BENCH:-}
if [ -z "$bench" ]; then
    bench=$(cargo bench --bench kernels --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "kernels" and m.get("executable"):
        print(m["executable"])')
fi
if [ ! -x "$bench" ]; then
    echo "error: no kernels bench binary ('$bench'); build it with" >&2
    echo "       cargo bench --bench kernels --no-run, or set EOSBENCH_KERNELS_BENCH" >&2
    exit 1
fi

mkdir -p "$out"
echo "kernels bench: $bench; threads $list; results in $out" >&2
echo "load before: $(cat /proc/loadavg)" | tee "$out/bench.log" >&2
# A criterion directory of its own: the table holds this run's results and nothing older.
CRITERION_HOME="$out/criterion" EOSBENCH_BENCH_WIDTHS=200 EOSBENCH_BENCH_THREADS=$list "$bench" --bench \
    --warm-up-time 0.5 --measurement-time 2 \
    '^kernels/(peak/fma|h200/(loss|gradient|hvp-b1|hvp-b4|third-order|roof-own|roof-faer))/' 2>&1 |
    tee -a "$out/bench.log" | grep -E '^kernels/' >&2 || true
echo "load after: $(cat /proc/loadavg)" | tee -a "$out/bench.log" >&2
python3 scripts/kernels-table.py --criterion-dir "$out/criterion" --out "$out"
