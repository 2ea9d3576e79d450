"""Checks of docqa_table.py on fabricated results.

    python3 -m unittest discover -s scripts -p 'test_*.py'
"""
import contextlib
import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import docqa_table  # noqa: E402


def item(shard, n, kind, correct, rag=None):
    i = {"id": f"docqa-{shard}-{n:03}", "kind": kind, "correct": correct, "answer": "x",
         "tokens": 3, "latency_ms": 100.0 + n, "strategy": "race"}
    if rag is not None:
        latency, answered, hit, rank = rag
        i["retrieval"] = {"latency_ms": latency, "asked": answered, "answered": answered,
                          "hits": 2 * answered, "sources": []}
        i["source_hit"] = hit
        if rank:
            i["source_rank"] = rank
    return i


def results(config, items):
    return {"set": "evals/docqa/questions.jsonl", "items": len(items),
            "settings": {"max_tokens": 32, "seed": 0, "concurrency": 1, "rag": "+rag" in config},
            "machine": {"nova": "nova 0.0.0 (test)", "cores": 2, "date": "2026-11-30T00:00:00Z"},
            "configs": [{"config": config, "errors": sum(1 for i in items if i["correct"] is None),
                         "items": items}]}


class Tables(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = self.tmp.name
        os.makedirs(os.path.join(self.out, "results"))
        # Six items, two per shard. RAG off: nothing right. One sharing (A): only A's items
        # cited and right. All sharing: every item cited, five right, one request failed.
        off = [item(s, n, "product", False) for s in "abc" for n in (1, 2)]
        one = [item(s, n, "product", s == "a", (10.0 * n, 1, s == "a", 1 if s == "a" else None))
               for s in "abc" for n in (1, 2)]
        full = [item(s, n, "product", True, (20.0 * n, 3, True, n)) for s in "abc" for n in (1, 2)]
        full[-1]["correct"] = None
        full[-1]["error"] = "HTTP 503"
        for name, config, items in [("rag-off", "greedy", off), ("rag-one", "greedy+rag", one),
                                    ("rag-all", "greedy+rag", full)]:
            with open(os.path.join(self.out, "results", f"{name}.json"), "w") as f:
                json.dump(results(config, items), f)
        with open(os.path.join(self.out, "index-build.json"), "w") as f:
            json.dump({"files": 500, "bytes": 2 * 2**20,
                       "runs": [{"add_s": 2.0, "index_bytes": 2**20, "knowledge_dir_bytes": 3 * 2**20},
                                {"add_s": 3.0, "index_bytes": 2**20, "knowledge_dir_bytes": 3 * 2**20},
                                {"add_s": 4.0, "index_bytes": 2**20, "knowledge_dir_bytes": 3 * 2**20}],
                       "reindex_s": [0.5],
                       "shards": {"a": {"files": 84, "add_s": 0.25, "index_bytes": 2**19}}}, f)

    def tearDown(self):
        self.tmp.cleanup()

    def run_main(self):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = docqa_table.main([self.out])
        self.assertEqual(rc, 0)
        return buf.getvalue()

    def test_tables(self):
        t = self.run_main()
        # Accuracy per setup, with CI, per shard and the paired comparison with RAG off.
        self.assertIn("| RAG off, 3 workers | greedy | 6 | 0.0 % [0.0, 39.0] | 0/2 (0 %) | 0/2 (0 %) | 0/2 (0 %) | – |", t)
        self.assertIn("| RAG on, 1 of 3 nodes sharing (A) | greedy+rag | 6 | 33.3 % [9.7, 70.0] | 2/2 (100 %) | 0/2 (0 %) | 0/2 (0 %) | 2 / 0 (p = 0.5) |", t)
        self.assertIn("| RAG on, 3 of 3 nodes sharing | greedy+rag | 5 | 100.0 % [56.6, 100.0] | 2/2 (100 %) | 2/2 (100 %) | 1/1 (100 %) | 5 / 0 (p = 0.0625) |", t)
        row = next(r for r in t.splitlines() if r.startswith("| RAG on, 3 of 3 nodes sharing | greedy+rag"))
        self.assertTrue(row.endswith("| 101.0 | 102.0 | 1 |"), row)
        # Retrieval: nodes that answered, latency percentiles, recall per shard.
        self.assertIn("| RAG on, 1 of 3 nodes sharing (A) | 6 | 1 (1) ×6 | 2.0 | 10.0 | 20.0 | 33.3 % [9.7, 70.0] | 2/6 (33 %) | 2/2 / 0/2 / 0/2 | 2/2 (100 %) / 0/4 (0 %) |", t)
        self.assertIn("| RAG on, 3 of 3 nodes sharing | 5 | 3 (3) ×5 | 6.0 | 20.0 | 40.0 | 100.0 % [56.6, 100.0] | 3/5 (60 %) | 2/2 / 2/2 / 1/1 | 5/5 (100 %) / - |", t)
        self.assertNotIn("| RAG off, 3 workers | 0 |", t)
        # Index build, scaled to 1,000 files.
        self.assertIn("| `nova rag add` wall time, fresh data dir | 3.00 s (min 2.00, max 4.00, 3 runs) | 6.00 s (min 4.00, max 8.00, 3 runs) |", t)
        self.assertIn("| index file (`knowledge/index.sqlite` + `-wal`) | 1.00 MiB | 2.00 MiB |", t)
        self.assertIn("| `nova rag reindex`, nothing changed | 0.50 s | 1.00 s |", t)
        self.assertIn("| shard-a | 84 | 0.25 s | 0.50 MiB |", t)
        # Per kind.
        self.assertIn("| RAG on, 1 of 3 nodes sharing (A) | 2/6 (33 %) |", t)

    def test_missing_pieces_are_left_out(self):
        os.remove(os.path.join(self.out, "results", "rag-one.json"))
        os.remove(os.path.join(self.out, "index-build.json"))
        t = self.run_main()
        self.assertNotIn("1 of 3", t)
        self.assertNotIn("rag add", t)
        self.assertIn("3 of 3 nodes sharing", t)

    def test_nothing_is_an_error(self):
        with tempfile.TemporaryDirectory() as d:
            with contextlib.redirect_stderr(io.StringIO()):
                self.assertEqual(docqa_table.main([d]), 1)

    def test_shard_of(self):
        self.assertEqual(docqa_table.shard_of({"id": "docqa-b-017"}), "b")
        self.assertEqual(docqa_table.shard_of({"id": "x-1", "source": "shard-c/a.md"}), "c")
        self.assertEqual(docqa_table.shard_of({"id": "arith-001"}), "?")


if __name__ == "__main__":
    unittest.main()
