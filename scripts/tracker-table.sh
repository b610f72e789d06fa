#!/usr/bin/env bash
# The tracker table: products per estimate, tracked/untracked step time, and (audited runs)
# the error against a tight f64 solve and the bound/error ratio, per strategy × phase × k on
# fc-tanh / cifar10-5k, η = 2/200, sharpness every step (examples/tracker_audit.rs).
#
#   scripts/tracker-table.sh EDGE_CHECKPOINT [THREADS]
#
# EDGE_CHECKPOINT is a state at the edge of stability, e.g. the final.safetensors of
#   eosbench train --preset fc-tanh --dataset cifar10-5k --lr 2/200 --eig-every 100 --max-steps 4700
# The rising phase starts from the initialization (seed 0). Writes results/tracker/<UTC>/: one
# CSV per run, summary.txt (one line per run) and table.md (scripts/tracker-table.py). Needs
# EOSBENCH_DATA. About 30 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
edge=${1:?usage: scripts/tracker-table.sh EDGE_CHECKPOINT [THREADS]}
threads=${2:-2}
[ -f "$edge" ] || { echo "error: no checkpoint at $edge" >&2; exit 1; }
cargo build --release --example tracker_audit
out="results/tracker/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
run() { # name start steps audit_every strategy k [stop]
    local name=$1; shift
    local start=$1; [ "$start" = edge ] && start=$edge
    echo "== $name" | tee -a "$out/summary.txt"
    THREADS=$threads ./target/release/examples/tracker_audit "$start" "${@:2}" \
        > "$out/$name.csv" 2> >(tee -a "$out/summary.txt" >&2)
    wait
}
run history-k1-edge   edge 100 4 history 1
run history-k1-rising init 100 4 history 1
run lanczos-k1-edge   edge 40 0 lanczos 1 residual
run lanczos-k1-rising init 40 0 lanczos 1 residual
run history-k1-edge-residual edge 40 0 history 1 residual
run lobpcg-k1-edge    edge 40 0 lobpcg 1
run lobpcg-k1-rising  init 40 0 lobpcg 1
for k in 2 4; do
    run history-k$k-edge   edge 40 0 history $k
    run history-k$k-rising init 40 0 history $k
    run lanczos-k$k-edge   edge 40 0 lanczos $k residual
done
python3 scripts/tracker-table.py "$out"
echo "results in $out (table.md, summary.txt, one CSV per run)"
