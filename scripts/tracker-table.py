#!/usr/bin/env python3
"""Summarize a tracker run directory (scripts/tracker-table.sh) into table.md.

One row per run CSV (examples/tracker_audit.rs output, named STRATEGY-kK-PHASE[-STOP].csv):
median and p90 products per estimate and the median tracked/untracked step-time ratio (the first
estimate, a cold solve, left out), and for audited runs the largest relative error against the
tight f64 solve, the bounds that fail even with a slack of 1e-6·λ (the f32 operator's rounding),
and the smallest and largest bound/error ratios where the error is above 1e-5·λ.

    python3 scripts/tracker-table.py results/tracker/<UTC> [--out FILE]
"""
import argparse
import csv
import os
import statistics
import sys

SLACK = 1e-6


def pct(values, q):
    v = sorted(values)
    return v[round((len(v) - 1) * q)]


def summarize(path):
    rows = list(csv.DictReader(open(path)))
    later = [r for r in rows if int(r["step"]) > 0]
    if not later:
        return None
    products = [int(r["products"]) for r in later]
    ratio = [float(r["t_step_ms"]) / (float(r["t_step_ms"]) - float(r["t_eig_ms"])) for r in later]
    audited = [r for r in rows if r["tight_lambda_1"]]
    errs, ratios, bounded, violations = [], [], 0, 0
    for r in audited:
        t, lam = float(r["tight_lambda_1"]), float(r["lambda_1"])
        err = t - lam
        errs.append(abs(err) / abs(t))
        if r["bound_1"]:
            b = float(r["bound_1"])
            bounded += 1
            violations += err > b + SLACK * abs(t)
            if abs(err) > 10 * SLACK * abs(t):
                ratios.append(b / abs(err))
    return {
        "estimates": len(later),
        "median": statistics.median(products),
        "p90": pct(products, 0.9),
        "ratio": statistics.median(ratio),
        "audited": len(audited),
        "max_err": max(errs) if errs else None,
        "bounded": bounded,
        "violations": violations,
        "min_ratio": min(ratios) if ratios else None,
        "max_ratio": max(ratios) if ratios else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--out", help="default: DIR/table.md")
    a = ap.parse_args()
    names = sorted(f for f in os.listdir(a.dir) if f.endswith(".csv"))
    if not names:
        sys.exit(f"error: no run CSVs in {a.dir} (run scripts/tracker-table.sh first)")
    lines = [
        "| run | estimates | products median | p90 | tracked/untracked step | audited | max rel. error | bounds failing | bound/error min–max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        s = summarize(os.path.join(a.dir, name))
        if s is None:
            print(f"note: {name} has no estimates yet, left out", file=sys.stderr)
            continue
        f = lambda v, fmt: "–" if v is None else format(v, fmt)
        audit = (
            [str(s["audited"]), f(s["max_err"], ".1e"), f"{s['violations']} of {s['bounded']}", f"{f(s['min_ratio'], '.1f')}–{f(s['max_ratio'], '.0f')}"]
            if s["audited"]
            else ["–"] * 4
        )
        lines.append(
            "| "
            + " | ".join([name[:-4], str(s["estimates"]), f(s["median"], "g"), str(s["p90"]), f(s["ratio"], ".2f")] + audit)
            + " |"
        )
    text = "\n".join(lines) + "\n"
    out = a.out or os.path.join(a.dir, "table.md")
    open(out, "w").write(text)
    print(text, end="")


if __name__ == "__main__":
    main()
