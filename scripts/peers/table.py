#!/usr/bin/env python3
"""Merge the JSON files of a peers run (eosbench `ops --json` and scripts/peers/peers.py, same
schema) into DIR/table.md and DIR/peers.json.

    scripts/peers/table.py DIR

Several files of one implementation at one thread count are rounds of the same measurement:
each workload's time is the median of the per-round medians. Checks (loss, gradient norm,
v'Hv, sharpness) are compared with eosbench at the same thread count, or with
torch-double-backward where no eosbench file is present. Exits 1 when a check is out of
tolerance (loss / grad_norm / vhv: 1e-4 relative; sharpness: 2e-3 relative), 2 on bad input.
"""

import glob
import json
import os
import statistics
import sys

OPS = ("loss", "gradient", "hvp", "estimate", "estimate_reference", "tracked_step",
       "tracked_step_history")
ORDER = ("eosbench", "torch-double-backward", "torch-func", "jax")
CHECKS = ("loss", "grad_norm", "vhv", "sharpness")
TOLERANCE = {"loss": 1e-4, "grad_norm": 1e-4, "vhv": 1e-4, "sharpness": 2e-3}
OUTPUTS = ("peers.json",)


def load(directory):
    runs = []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        if os.path.basename(path) in OUTPUTS:
            continue
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            print(f"warning: skipping {path}: {e}", file=sys.stderr)
            continue
        if not isinstance(data, dict) or "impl" not in data or "ops" not in data:
            print(f"warning: skipping {path}: not an ops result", file=sys.stderr)
            continue
        data["_file"] = os.path.basename(path)
        runs.append(data)
    return runs


def impl_key(name):
    return (ORDER.index(name), name) if name in ORDER else (len(ORDER), name)


def merge(files):
    """One (impl, threads) group: the median of per-round medians per workload."""
    first = files[0]
    ops = {}
    for op in OPS:
        rounds = [f["ops"][op] for f in files if f["ops"].get(op)]
        if not rounds:
            continue
        med = [r["median_ms"] for r in rounds]
        entry = {
            "median_ms": statistics.median(med),
            "p10_ms": statistics.median(r["p10_ms"] for r in rounds),
            "p90_ms": statistics.median(r["p90_ms"] for r in rounds),
            "reps": sum(int(r["reps"]) for r in rounds),
            "first_call_ms": statistics.median(r["first_call_ms"] for r in rounds),
            "round_medians_ms": med,
            "rounds": len(rounds),
        }
        if "products" in rounds[0]:
            products = [int(r["products"]) for r in rounds]
            entry["products"] = int(statistics.median(products))
            if len(set(products)) > 1:
                entry["round_products"] = products
        if "value" in rounds[0]:
            entry["value"] = rounds[0]["value"]
            values = [r["value"] for r in rounds]
            if any(v != values[0] for v in values):
                entry["round_values"] = values
        ops[op] = entry
    check = dict(first.get("check") or {})
    spread = {}
    for key in CHECKS:
        vals = [f["check"].get(key) for f in files if f.get("check")]
        vals = [v for v in vals if v is not None]
        if check.get(key) is None and vals:
            check[key] = vals[0]
        if len(vals) > 1 and vals[0]:
            spread[key] = max(abs(v - vals[0]) for v in vals) / abs(vals[0])
    notes = []
    for f in files:
        for note in f.get("notes") or []:
            if note not in notes:
                notes.append(note)
    return {
        "impl": first["impl"], "threads": first["threads"], "rounds": len(files),
        "files": [f["_file"] for f in files], "versions": first.get("versions"),
        "dtype": first.get("dtype"), "network": first.get("network"),
        "dataset": first.get("dataset"), "n": first.get("n"), "params": first.get("params"),
        "check": check, "check_spread_over_rounds": spread,
        "check_rounds": [f.get("check") or {} for f in files], "ops": ops, "notes": notes,
    }


def rel_diff(a, b):
    if a is None or b is None:
        return None
    if b == 0:
        return 0.0 if a == 0 else float("inf")
    return abs(a - b) / abs(b)


def fmt_ms(ms):
    if ms is None:
        return "–"
    if ms < 10:
        return f"{ms:.2f} ms"
    if ms < 100:
        return f"{ms:.1f} ms"
    return f"{ms:.0f} ms"


def fmt_val(x):
    return "–" if x is None else f"{x:.7g}"


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    directory = argv[1]
    runs = load(directory)
    if not runs:
        print(f"error: no ops result JSON in {directory}", file=sys.stderr)
        return 2

    groups = {}
    for r in runs:
        groups.setdefault((int(r["threads"]), r["impl"]), []).append(r)
    merged = {key: merge(files) for key, files in groups.items()}
    thread_counts = sorted({t for t, _ in merged})

    reference = {}
    for t in thread_counts:
        impls = {i for tt, i in merged if tt == t}
        if "eosbench" in impls:
            reference[t] = "eosbench"
        elif "torch-double-backward" in impls:
            reference[t] = "torch-double-backward"
        else:
            reference[t] = None

    # Checks.
    check_rows = []
    all_ok = True
    for t in thread_counts:
        ref = reference[t]
        for key in sorted((k for k in merged if k[0] == t), key=lambda k: impl_key(k[1])):
            m = merged[key]
            row = {"impl": m["impl"], "threads": t, "reference": ref, "check": m["check"],
                   "rel_diff": {}, "max_rel_diff": None, "ok": True, "failed": []}
            if ref is not None and m["impl"] != ref:
                rc = merged[(t, ref)]["check"]
                for c in CHECKS:
                    # Every round must agree, not just the first.
                    ds = [rel_diff(rnd.get(c), rc.get(c)) for rnd in m["check_rounds"]]
                    ds = [d for d in ds if d is not None]
                    d = max(ds) if ds else None
                    row["rel_diff"][c] = d
                    if d is not None and d > TOLERANCE[c]:
                        row["ok"] = False
                        row["failed"].append(c)
                ds = [d for d in row["rel_diff"].values() if d is not None]
                row["max_rel_diff"] = max(ds) if ds else None
            all_ok &= row["ok"]
            check_rows.append(row)

    lines = [f"# eosbench and its peers: {os.path.abspath(directory)}", ""]
    first = runs[0]
    lines.append(f"Network {first.get('network')}, {first.get('dtype')}, dataset "
                 f"{first.get('dataset')} (n = {first.get('n')}), params `{first.get('params')}`.")
    lines.append("Times are the median over rounds of each round's median (a round is one "
                 "process run per implementation, interleaved with the others); reps are the "
                 "total timed repetitions. `[k]` is the number of Hessian-vector products the "
                 "solve used; `a× X` is the time relative to implementation X.")
    lines.append("")
    lines.append("## Checks")
    lines.append("")
    for t in thread_counts:
        if reference[t] == "torch-double-backward":
            lines.append(f"No eosbench result at {t} thread(s): compared against "
                         f"torch-double-backward instead.")
    lines.append(f"Tolerances (relative): loss, grad_norm, vhv {TOLERANCE['loss']:g}; "
                 f"sharpness {TOLERANCE['sharpness']:g}. vhv = v'Hv with v = g/|g|; sharpness "
                 f"is the `estimate` eigenvalue. Values shown are the first round's; the "
                 f"difference is the worst over all rounds against the reference's first round.")
    lines.append("")
    lines.append("| threads | implementation | loss | grad_norm | vhv | sharpness "
                 "| max rel. diff | vs | ok |")
    lines.append("|---:|---|---:|---:|---:|---:|---:|---|---|")
    for row in check_rows:
        c = row["check"]
        if row["max_rel_diff"] is None:
            diff = "(reference)" if row["impl"] == row["reference"] else "–"
        else:
            worst = max((k for k, v in row["rel_diff"].items() if v is not None),
                        key=lambda k: row["rel_diff"][k])
            diff = f"{row['max_rel_diff']:.1e} ({worst})"
        ok = "yes" if row["ok"] else "**NO: " + ", ".join(row["failed"]) + "**"
        lines.append(f"| {row['threads']} | {row['impl']} | {fmt_val(c.get('loss'))} "
                     f"| {fmt_val(c.get('grad_norm'))} | {fmt_val(c.get('vhv'))} "
                     f"| {fmt_val(c.get('sharpness'))} | {diff} | {row['reference'] or '–'} "
                     f"| {ok} |")
    lines.append("")

    # The reference code's eigsh(op, 2): values and products.
    ref_rows = [(k, merged[k]["ops"]["estimate_reference"]) for k in
                sorted(merged, key=lambda k: (k[0], impl_key(k[1])))
                if "estimate_reference" in merged[k]["ops"]]
    if ref_rows:
        lines.append("`estimate_reference` is `eigsh(op, 2)` as the reference code calls it "
                     "(which='LM': largest *magnitude*, tol=0). Its values:")
        lines.append("")
        lines.append("| threads | implementation | eigenvalues | products |")
        lines.append("|---:|---|---|---:|")
        for (t, impl), e in ref_rows:
            vals = e.get("value")
            text = ", ".join(f"{v:.6g}" for v in vals) if isinstance(vals, list) else str(vals)
            prods = ", ".join(map(str, e["round_products"])) if "round_products" in e \
                else str(e.get("products"))
            lines.append(f"| {t} | {impl} | {text} | {prods} |")
        lines.append("")

    # Timing tables.
    relative = {}
    for t in thread_counts:
        ref = reference[t]
        impls = sorted((i for tt, i in merged if tt == t), key=impl_key)
        lines.append(f"## {t} thread{'s' if t != 1 else ''}")
        lines.append("")
        lines.append("| workload | " + " | ".join(impls) + " |")
        lines.append("|---|" + "---:|" * len(impls))
        for op in OPS:
            if not any(op in merged[(t, i)]["ops"] for i in impls):
                continue
            label = op + (" [products]" if op in ("estimate", "estimate_reference",
                                                  "tracked_step", "tracked_step_history")
                          else "")
            cells = []
            ref_ms = merged[(t, ref)]["ops"].get(op, {}).get("median_ms") if ref else None
            for i in impls:
                e = merged[(t, i)]["ops"].get(op)
                if not e:
                    cells.append("–")
                    continue
                cell = fmt_ms(e["median_ms"])
                if "products" in e:
                    cell += f" [{e['products']}]"
                if ref_ms and i != ref:
                    ratio = e["median_ms"] / ref_ms
                    relative.setdefault(f"{t}", {}).setdefault(i, {})[op] = ratio
                    cell += f", {ratio:.2f}× {ref}"
                cells.append(cell)
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("First call (warm-up: JIT compilation, lazy initialisation), and the "
                     "timed repetitions behind each median:")
        lines.append("")
        lines.append("| workload | " + " | ".join(impls) + " |")
        lines.append("|---|" + "---:|" * len(impls))
        for op in OPS:
            if not any(op in merged[(t, i)]["ops"] for i in impls):
                continue
            cells = []
            for i in impls:
                e = merged[(t, i)]["ops"].get(op)
                cells.append("–" if not e else
                             f"{fmt_ms(e['first_call_ms'])} ({e['reps']} reps, "
                             f"{e['rounds']} round{'s' if e['rounds'] != 1 else ''})")
            lines.append(f"| {op} | " + " | ".join(cells) + " |")
        lines.append("")

    lines.append("## Versions and notes")
    lines.append("")
    for key in sorted(merged, key=lambda k: (k[0], impl_key(k[1]))):
        m = merged[key]
        versions = ", ".join(f"{k} {v}" for k, v in (m["versions"] or {}).items())
        lines.append(f"- **{m['impl']}**, {m['threads']} thread(s), {m['rounds']} round(s) "
                     f"({', '.join(m['files'])}): {versions or 'versions not recorded'}")
        for note in m["notes"]:
            lines.append(f"  - {note}")
    lines.append("")
    if not all_ok:
        lines.append("**CHECK FAILED**: at least one implementation disagrees with the "
                     "reference beyond tolerance (see the check table).")
        lines.append("")

    with open(os.path.join(directory, "table.md"), "w") as f:
        f.write("\n".join(lines))
    summary = {
        "directory": os.path.abspath(directory),
        "merge": "median of the per-round medians; p10/p90/first_call: median over rounds; "
                 "reps: total",
        "tolerance": TOLERANCE,
        "reference": {str(t): r for t, r in reference.items()},
        "checks_ok": all_ok,
        "check": check_rows,
        "relative_time": relative,
        "results": [merged[k] for k in sorted(merged, key=lambda k: (k[0], impl_key(k[1])))],
    }
    with open(os.path.join(directory, "peers.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    print("\n".join(lines))
    if not all_ok:
        print("error: check failed (see the check table)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
