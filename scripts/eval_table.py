#!/usr/bin/env python3
"""Combines `nova eval` result files (one per configuration) into BENCHMARKS.md's tables.

    scripts/eval_table.py target/eval/*.json

Prints: accuracy with its 95 % Wilson interval, tokens per item, p50/p95 latency, and the paired
comparison with `greedy` on the same items (items only it got right / only greedy got right,
and McNemar's exact two-sided p), then accuracy per kind of question.
"""
import json
import math
import sys

ORDER = ["greedy", "sampled", "best_of_n:3", "vote:3", "vote:5", "vote:9", "council:3", "auto"]


def load(paths):
    runs = {}
    for p in paths:
        with open(p, encoding="utf-8") as f:
            d = json.load(f)
        for c in d["configs"]:
            items = {i["id"]: i for i in c["items"]}
            runs[c["config"]] = (c, items, d)
    return runs


def mcnemar(b, c):
    """Exact two-sided McNemar p for b and c discordant pairs."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def main():
    runs = load(sys.argv[1:])
    names = sorted(runs, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))
    base = runs.get("greedy")
    print("| config | strategy run | n | accuracy [95 % CI] | vs greedy: only it right / only greedy right (p) | tokens/item | p50 ms | p95 ms | errors |")
    print("|---|---|---:|---|---|---:|---:|---:|---:|")
    for name in names:
        c, items, _ = runs[name]
        lo, hi = c["ci95"] if c.get("ci95") else (0, 0)
        acc = f"{100 * c['accuracy']:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]" if c["n"] else "-"
        cmp = "–"
        if base and name != "greedy":
            b_items = base[1]
            only_it = sum(1 for k, i in items.items() if i.get("correct") and k in b_items and not b_items[k].get("correct"))
            only_g = sum(1 for k, i in items.items() if not i.get("correct") and k in b_items and b_items[k].get("correct"))
            cmp = f"{only_it} / {only_g} (p = {mcnemar(only_it, only_g):.3f})"
        counts = {}
        for i in items.values():
            counts[i.get("strategy") or "?"] = counts.get(i.get("strategy") or "?", 0) + 1
        ran = ", ".join(f"{s} ×{n}" for s, n in sorted(counts.items(), key=lambda x: -x[1]))
        print(f"| {name} | {ran} | {c['n']} | {acc} | {cmp} | {c['tokens_per_item']:.1f} | {c['p50_ms']:.0f} | {c['p95_ms']:.0f} | {c['errors']} |")
    kinds = sorted({k for n in names for k in runs[n][0].get("per_kind", {})})
    print()
    print("| config | " + " | ".join(kinds) + " |")
    print("|---|" + "---:|" * len(kinds))
    for name in names:
        pk = runs[name][0].get("per_kind", {})
        cells = [f"{100 * pk[k]['accuracy']:.0f} % ({pk[k]['correct']}/{pk[k]['n']})" if k in pk and pk[k]["n"] else "-" for k in kinds]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
