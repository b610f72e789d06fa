#!/usr/bin/env python3
"""Tables of medians and target ratios from the criterion results of `cargo bench --bench kernels`.

Reads every `kernels/*` benchmark under the criterion directory (default `target/criterion`),
prints per width a table of medians (ms) and FLOP rates (GFLOP/s, from the benchmarks' declared
throughput), and the ratios the kernels are held to:

- gradient FLOP rate / roof FLOP rate (roof-faer, and roof-own where measured)   target >= 0.90
- HVP (b = 1) time / gradient time                                              target <= 1.15
- HVP b = 4 time per direction / HVP b = 1 time                                  target <= 0.90
- 1-thread time / 2-thread time, gradient and HVP b = 1                          target >= 1.80
  (and the speed-up over one thread at every other thread count measured, e.g.
  `EOSBENCH_BENCH_THREADS=1,2,4,8,16 EOSBENCH_BENCH_WIDTHS=200 cargo bench --bench kernels`)
- HVP b = 1 FLOP rate / FMA peak (kernels/peak); third-order product time / HVP time
- the same block ratio for the HVP's GEMMs alone (roof-hvp-b4 / 4 / roof-hvp-b1), and the HVP's
  time over that of its GEMMs alone

Each width's table says when it was measured, and flags results that span several runs or trail
the newest by over an hour (criterion keeps the last result of every benchmark, so a width not
re-run keeps its old numbers); `--widths 200` restricts the tables to the widths of one run.

With `--out DIR` it also writes DIR/table.md and DIR/medians.csv (one row per benchmark), e.g.
`--out results/kernels/$(date -u +%Y%m%dT%H%M%SZ)`. Only the Python standard library is needed.

    cargo bench --bench kernels -- --warm-up-time 1 --measurement-time 2
    python3 scripts/kernels-table.py --out results/kernels/latest
"""

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict

TARGETS = {
    "grad_vs_roof": (">=", 0.90),
    "hvp_vs_grad": ("<=", 1.15),
    "block4_per_dir": ("<=", 0.90),
    "speedup_2t": (">=", 1.80),
}


def load(root):
    """({(group, function, value): (median_ns, flops or None)}, {same key: when measured, epoch s})
    for the latest run of each."""
    found, when = {}, {}
    for dirpath, _, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            bench = json.load(f)
        if not bench["group_id"].startswith("kernels/"):
            continue
        est_path = os.path.join(dirpath, "estimates.json")
        if not os.path.exists(est_path):
            continue
        with open(est_path) as f:
            est = json.load(f)
        flops = (bench.get("throughput") or {}).get("Elements")
        key = (bench["group_id"], bench["function_id"], bench["value_str"])
        found[key] = (est["median"]["point_estimate"], flops)
        when[key] = os.path.getmtime(est_path)
    return found, when


def utc(t, fmt="%Y-%m-%d %H:%M"):
    return time.strftime(fmt, time.gmtime(t)) + " UTC"


def measured(group, when):
    """When a width's results were measured, flagged when they span or trail runs by over an hour."""
    times = [t for (g, _, _), t in when.items() if g == group]
    lo, hi, newest = min(times), max(times), max(when.values())
    text = f"measured {utc(lo)}" + (f" to {utc(hi, '%H:%M')}" if hi - lo >= 60 else "")
    notes = []
    if hi - lo > 3600:
        notes.append("from several runs")
    if newest - hi > 3600:
        notes.append(f"{(newest - hi) / 3600:.1f} h older than the newest results")
    return text + "".join(f"; {n}" for n in notes)


def check(name, value):
    op, bound = TARGETS[name]
    ok = value >= bound if op == ">=" else value <= bound
    return f"{value:.3f} ({'met' if ok else 'NOT met'}, {op} {bound:.2f})"


def thread_key(value):
    m = re.fullmatch(r"t(\d+)", value)
    return int(m.group(1)) if m else sys.maxsize


def width_key(group):
    m = re.fullmatch(r"kernels/h(\d+)", group)
    return int(m.group(1)) if m else sys.maxsize


def tables(found, when):
    lines = []
    peak = {v: (t, fl) for (g, f, v), (t, fl) in found.items() if g == "kernels/peak"}
    if peak:
        cells = ", ".join(
            f"{v}: {fl / t:.1f} GFLOP/s" for v, (t, fl) in sorted(peak.items(), key=lambda x: thread_key(x[0]))
        )
        lines += [f"FMA peak (kernels/peak): {cells}", ""]
    groups = sorted({g for (g, _, _) in found if g != "kernels/peak"}, key=width_key)
    for group in groups:
        rows = defaultdict(dict)
        for (g, f, v), (t, fl) in found.items():
            if g == group:
                rows[f][v] = (t, fl)
        threads = sorted({v for r in rows.values() for v in r}, key=thread_key)
        lines.append(f"### {group}")
        lines.append("")
        lines.append(f"_{measured(group, when)}_")
        lines.append("")
        lines.append("| benchmark | " + " | ".join(f"{v} ms | {v} GFLOP/s" for v in threads) + " |")
        lines.append("|---|" + "---|---|" * len(threads))
        for f in sorted(rows):
            cells = []
            for v in threads:
                if v in rows[f]:
                    t, fl = rows[f][v]
                    cells += [f"{t / 1e6:.2f}", f"{fl / t:.1f}" if fl else ""]
                else:
                    cells += ["", ""]
            lines.append(f"| {f} | " + " | ".join(cells) + " |")
        lines.append("")

        def get(f, v):
            return rows.get(f, {}).get(v)

        for v in threads:
            ratios = []
            grad, hvp1, hvp4 = get("gradient", v), get("hvp-b1", v), get("hvp-b4", v)
            for roof in ("roof-faer", "roof-own"):
                r = get(roof, v)
                if grad and r and grad[1] and r[1]:
                    rate = (grad[1] / grad[0]) / (r[1] / r[0])
                    ratios.append(f"gradient rate / {roof} rate {check('grad_vs_roof', rate)}")
            if grad and hvp1:
                ratios.append(f"HVP / gradient {check('hvp_vs_grad', hvp1[0] / grad[0])}")
            if hvp1 and hvp4:
                ratios.append(f"b=4 per direction / b=1 {check('block4_per_dir', hvp4[0] / 4 / hvp1[0])}")
            rh1, rh4 = get("roof-hvp-b1", v), get("roof-hvp-b4", v)
            if rh1 and rh4:
                ratios.append(f"roof-hvp b=4 per direction / b=1 {rh4[0] / 4 / rh1[0]:.3f}")
                if hvp1 and hvp4:
                    ratios.append(
                        f"HVP / its GEMMs alone: b=1 {hvp1[0] / rh1[0]:.3f}, b=4 {hvp4[0] / rh4[0]:.3f}"
                    )
            third = get("third-order", v)
            if third and hvp1:
                ratios.append(f"third-order / HVP {third[0] / hvp1[0]:.3f}")
            if hvp1 and hvp1[1] and v in peak:
                t, fl = peak[v]
                ratios.append(f"HVP b=1 at {100 * (hvp1[1] / hvp1[0]) / (fl / t):.1f} % of the FMA peak")
            if ratios:
                lines.append(f"- {v}: " + "; ".join(ratios))
        one = [v for v in threads if thread_key(v) == 1]
        for v in threads:
            if not one or thread_key(v) < 2:
                continue
            cells = []
            for f in ("gradient", "hvp-b1", "hvp-b4"):
                a, b = get(f, one[0]), get(f, v)
                if a and b:
                    x = a[0] / b[0]
                    if thread_key(v) == 2 and f != "hvp-b4":
                        cells.append(f"{f} {check('speedup_2t', x)}")
                    else:
                        cells.append(f"{f} {x:.2f}x ({100 * x / thread_key(v):.0f} % per thread)")
            if cells:
                lines.append(f"- speed-up t1 / {v}: " + "; ".join(cells))
        lines.append("")
    return lines


def meta():
    def run(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return [
        f"- git: {run(['git', 'describe', '--always', '--dirty'])}",
        f"- cpu: {cpu}, {os.cpu_count()} logical cores",
        "- medians of criterion's `new` estimates (the last run of each benchmark)",
        "- the targets are set at the Figure-1 shape (h = 200); other widths are for reference",
        "",
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--criterion-dir", default="target/criterion", help="criterion output (default: %(default)s)")
    ap.add_argument("--out", help="also write table.md and medians.csv into this directory")
    ap.add_argument("--widths", help="only these hidden widths, comma-separated (e.g. 200)")
    args = ap.parse_args()
    found, when = load(args.criterion_dir)
    if args.widths:
        keep = {f"kernels/h{w.strip()}" for w in args.widths.split(",")} | {"kernels/peak"}
        found = {k: v for k, v in found.items() if k[0] in keep}
        when = {k: v for k, v in when.items() if k in found}
    if not any(g != "kernels/peak" for (g, _, _) in found):
        sys.exit(
            f"error: no kernels/* benchmark results under {args.criterion_dir}"
            + (f" for widths {args.widths}" if args.widths else "")
            + "; run `cargo bench --bench kernels` first (or pass --criterion-dir)"
        )
    text = "\n".join(["## Kernels benchmark", ""] + meta() + tables(found, when))
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "table.md"), "w") as f:
            f.write(text + "\n")
        with open(os.path.join(args.out, "medians.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["group", "benchmark", "threads", "median_ms", "gflop_per_s", "measured_utc"])
            for (g, fn, v), (t, fl) in sorted(found.items()):
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when[(g, fn, v)]))
                w.writerow([g, fn, v, f"{t / 1e6:.4f}", f"{fl / t:.2f}" if fl else "", stamp])
        print(f"wrote {args.out}/table.md and {args.out}/medians.csv", file=sys.stderr)


if __name__ == "__main__":
    main()
