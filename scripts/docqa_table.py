#!/usr/bin/env python3
"""Turns the results of scripts/eval_docqa.sh into BENCHMARKS.md's document-QA tables.

    scripts/docqa_table.py [OUT_DIR]        (default target/eval-docqa)

Reads OUT_DIR/results/<setup>.json (`nova eval --out` files, one per setup) and
OUT_DIR/index-build.json, and prints Markdown: accuracy per setup with its 95 % Wilson interval,
per shard and per kind; the paired comparison with RAG off; the retrieval fan-out's latency,
the nodes that answered and the share of items whose gold file was cited; and the index build
time and size per 1,000 files. Setups or files that are missing are left out.
"""
import json
import math
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval_table import mcnemar  # noqa: E402

# (file name under results/, description), in the order of the tables.
SETUPS = [
    ("rag-off", "RAG off, 3 workers"),
    ("rag-one", "RAG on, 1 of 3 nodes sharing (A)"),
    ("rag-all", "RAG on, 3 of 3 nodes sharing"),
]
SHARDS = ["a", "b", "c"]
Z95 = 1.959963984540054


def wilson(k, n):
    if n == 0:
        return None
    p = k / n
    z2 = Z95 * Z95
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = Z95 / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def pct_ci(k, n):
    if n == 0:
        return "-"
    lo, hi = wilson(k, n)
    return f"{100 * k / n:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]"


def frac(k, n):
    return f"{k}/{n} ({100 * k / n:.0f} %)" if n else "-"


def percentile(values, q):
    """Nearest rank, as `nova eval` computes it."""
    if not values:
        return None
    v = sorted(values)
    rank = math.ceil(q / 100 * len(v))
    return v[min(max(rank, 1), len(v)) - 1]


def ms(v):
    return "-" if v is None else f"{v:.1f}"


def shard_of(item):
    """The shard of a docqa item: from its id (`docqa-b-017`), else its source."""
    parts = item["id"].split("-")
    if len(parts) >= 3 and parts[0] == "docqa" and parts[1] in SHARDS:
        return parts[1]
    src = item.get("source") or ""
    return src[len("shard-")] if src.startswith("shard-") and len(src) > 6 else "?"


def load_setups(out):
    runs = []
    for name, desc in SETUPS:
        path = os.path.join(out, "results", f"{name}.json")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        if not doc.get("configs"):
            continue
        # One configuration per setup (greedy, or greedy+rag).
        runs.append((name, desc, doc["configs"][0], doc))
    return runs


def answered(items):
    return [i for i in items if i.get("correct") is not None]


def accuracy_table(runs):
    lines = ["| setup | config | n | accuracy [95 % CI] | shard A | shard B | shard C | vs RAG off: only it right / only off right (p) | p50 ms | p95 ms | errors |",
             "|---|---|---:|---|---|---|---|---|---:|---:|---:|"]
    base = {i["id"]: i for i in runs[0][2]["items"]} if runs and runs[0][0] == "rag-off" else None
    for name, desc, c, _ in runs:
        items = answered(c["items"])
        k = sum(1 for i in items if i["correct"])
        shards = []
        for s in SHARDS:
            mine = [i for i in items if shard_of(i) == s]
            shards.append(frac(sum(1 for i in mine if i["correct"]), len(mine)))
        cmp = "–"
        if base is not None and name != "rag-off":
            pairs = [(i, base[i["id"]]) for i in items
                     if i["id"] in base and base[i["id"]].get("correct") is not None]
            only_it = sum(1 for i, b in pairs if i["correct"] and not b["correct"])
            only_off = sum(1 for i, b in pairs if not i["correct"] and b["correct"])
            if pairs:
                cmp = f"{only_it} / {only_off} (p = {mcnemar(only_it, only_off):.3g})"
        lat = [i["latency_ms"] for i in items]
        lines.append(f"| {desc} | {c['config']} | {len(items)} | {pct_ci(k, len(items))} | "
                     + " | ".join(shards)
                     + f" | {cmp} | {ms(percentile(lat, 50))} | {ms(percentile(lat, 95))} | "
                     f"{c.get('errors', 0)} |")
    return "\n".join(lines)


def kind_table(runs):
    kinds = sorted({i["kind"] for _, _, c, _ in runs for i in c["items"]})
    lines = ["| setup | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]
    for _, desc, c, _ in runs:
        items = answered(c["items"])
        cells = []
        for kd in kinds:
            mine = [i for i in items if i["kind"] == kd]
            cells.append(frac(sum(1 for i in mine if i["correct"]), len(mine)))
        lines.append(f"| {desc} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def retrieval_table(runs):
    lines = ["| setup | answers with retrieval | nodes answered (asked) | hits per query | fan-out p50 ms | fan-out p95 ms | gold file cited [95 % CI] | cited first | cited: A / B / C | accuracy when cited / not cited |",
             "|---|---:|---|---:|---:|---:|---|---:|---|---|"]
    shown = 0
    for _, desc, c, _ in runs:
        items = [i for i in answered(c["items"]) if i.get("retrieval") is not None]
        if not items:
            continue
        shown += 1
        rets = [i["retrieval"] for i in items]
        lat = [r["latency_ms"] for r in rets if r.get("latency_ms") is not None]
        nodes = {}
        for r in rets:
            key = f"{r.get('answered', '?')} ({r.get('asked', '?')})"
            nodes[key] = nodes.get(key, 0) + 1
        node_cell = ", ".join(f"{k} ×{n}" for k, n in sorted(nodes.items(), key=lambda x: -x[1]))
        hits = [r["hits"] for r in rets if r.get("hits") is not None]
        hits_cell = f"{statistics.mean(hits):.1f}" if hits else "-"
        gold = [i for i in items if i.get("source_hit") is not None]
        cited = [i for i in gold if i["source_hit"]]
        first = sum(1 for i in cited if i.get("source_rank") == 1)
        per_shard = []
        for s in SHARDS:
            mine = [i for i in gold if shard_of(i) == s]
            per_shard.append(f"{sum(1 for i in mine if i['source_hit'])}/{len(mine)}" if mine else "-")
        not_cited = [i for i in gold if not i["source_hit"]]
        acc = (f"{frac(sum(1 for i in cited if i['correct']), len(cited))} / "
               f"{frac(sum(1 for i in not_cited if i['correct']), len(not_cited))}")
        lines.append(f"| {desc} | {len(items)} | {node_cell} | {hits_cell} | "
                     f"{ms(percentile(lat, 50))} | {ms(percentile(lat, 95))} | "
                     f"{pct_ci(len(cited), len(gold))} | {frac(first, len(gold))} | "
                     f"{' / '.join(per_shard)} | {acc if gold else '-'} |")
    return "\n".join(lines) if shown else None


def build_table(out):
    path = os.path.join(out, "index-build.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        b = json.load(f)
    files = b["files"]
    scale = 1000 / files if files else 0
    adds = [r["add_s"] for r in b["runs"]]
    sizes = [r["index_bytes"] for r in b["runs"] if r.get("index_bytes") is not None]
    dirs = [r["knowledge_dir_bytes"] for r in b["runs"] if r.get("knowledge_dir_bytes") is not None]
    reindex = b.get("reindex_s") or []

    def secs(v):
        if not v:
            return "-"
        med = statistics.median(v)
        return (f"{med:.2f} s" if len(v) == 1
                else f"{med:.2f} s (min {min(v):.2f}, max {max(v):.2f}, {len(v)} runs)")

    def mib(v):
        return "-" if v is None else f"{v / 2**20:.2f} MiB"

    size = statistics.median(sizes) if sizes else None
    kdir = statistics.median(dirs) if dirs else None
    lines = [
        "| measure | value | per 1,000 files |",
        "|---|---:|---:|",
        f"| files indexed (`gen_docqa.py bulk`) | {files} | 1,000 |",
        f"| text indexed | {mib(b['bytes'])} | {mib(b['bytes'] * scale)} |",
        f"| `nova rag add` wall time, fresh data dir | {secs(adds)} | "
        f"{secs([a * scale for a in adds])} |",
        f"| index file (`knowledge/index.sqlite` + `-wal`) | {mib(size)} | "
        f"{mib(None if size is None else size * scale)} |",
        f"| whole `knowledge/` directory | {mib(kdir)} | "
        f"{mib(None if kdir is None else kdir * scale)} |",
        f"| `nova rag reindex`, nothing changed | {secs(reindex)} | "
        f"{secs([r * scale for r in reindex])} |",
    ]
    shards = b.get("shards") or {}
    if shards:
        lines += ["", "| docqa shard | files | `rag add` wall time | index size |", "|---|---:|---:|---:|"]
        for s, v in sorted(shards.items()):
            lines.append(f"| shard-{s} | {v.get('files', '-')} | {v.get('add_s', 0):.2f} s | "
                         f"{mib(v.get('index_bytes'))} |")
    return "\n".join(lines)


def main(argv):
    out = argv[0] if argv else "target/eval-docqa"
    runs = load_setups(out)
    parts = []
    if runs:
        doc = runs[0][3]
        m = doc.get("machine", {})
        s = doc.get("settings", {})
        parts.append(f"Set: {doc.get('set')} ({doc.get('items')} items); max_tokens "
                     f"{s.get('max_tokens')}, seed {s.get('seed')}, concurrency "
                     f"{s.get('concurrency')}; {m.get('nova', '?')}, {m.get('cores', '?')} cores, "
                     f"{m.get('date', '?')}.")
        parts.append(accuracy_table(runs))
        parts.append(kind_table(runs))
        r = retrieval_table(runs)
        if r:
            parts.append(r)
    b = build_table(out)
    if b:
        parts.append(b)
    if not parts:
        print(f"no results under {out}", file=sys.stderr)
        return 1
    print("\n\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
