"""Checks of gen_docqa.py: determinism, the committed questions, the corpus's shape.

    python3 -m unittest discover -s evals/docqa -p 'test_*.py'
"""
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_docqa  # noqa: E402


def tree_digest(root):
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            p = os.path.join(dirpath, f)
            h.update(os.path.relpath(p, root).encode())
            with open(p, "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


class Questions(unittest.TestCase):
    def setUp(self):
        buf = io.StringIO()
        gen_docqa.write_questions(buf)
        self.text = buf.getvalue()
        self.items = [json.loads(line) for line in self.text.splitlines()]

    def test_committed_file_is_the_generator_output(self):
        with open(os.path.join(HERE, "questions.jsonl"), encoding="utf-8") as f:
            self.assertEqual(f.read(), self.text)

    def test_same_bytes_under_another_hash_seed(self):
        env = dict(os.environ, PYTHONHASHSEED="12345")
        out = subprocess.run([sys.executable, os.path.join(HERE, "gen_docqa.py"), "questions"],
                             env=env, capture_output=True, check=True, text=True).stdout
        self.assertEqual(out, self.text)

    def test_shape(self):
        self.assertGreaterEqual(len(self.items), 120)
        ids = [i["id"] for i in self.items]
        self.assertEqual(len(ids), len(set(ids)))
        for shard in gen_docqa.SHARDS:
            mine = [i for i in self.items if i["id"].startswith(f"docqa-{shard}-")]
            self.assertEqual(len(mine) * 3, len(self.items), shard)
            for i in mine:
                self.assertTrue(i["source"].startswith(f"shard-{shard}/"), i)
        for i in self.items:
            self.assertEqual(list(i), ["id", "kind", "prompt", "answers", "source"])
            self.assertIn(i["kind"], gen_docqa.KINDS)
            self.assertTrue(i["prompt"].endswith(("Answer with just the name.",
                                                  "Answer with just the number.")), i)
            self.assertTrue(i["answers"] and all(a.strip() for a in i["answers"]), i)
            if i["prompt"].endswith("number."):
                # Never a number a citation such as [3] could be mistaken for.
                self.assertGreaterEqual(int(i["answers"][0]), 11, i)


class Corpus(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = os.path.join(cls.tmp.name, "corpus")
        gen_docqa.write_corpus(cls.out)
        buf = io.StringIO()
        gen_docqa.write_questions(buf)
        cls.items = [json.loads(line) for line in buf.getvalue().splitlines()]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def files(self):
        out = []
        for shard in gen_docqa.SHARDS:
            root = os.path.join(self.out, f"shard-{shard}")
            for dirpath, _, filenames in os.walk(root):
                out += [os.path.relpath(os.path.join(dirpath, f), self.out) for f in filenames]
        return out

    def test_deterministic_and_rewritable(self):
        first = tree_digest(self.out)
        gen_docqa.write_corpus(self.out)  # over its own earlier output
        self.assertEqual(tree_digest(self.out), first)

    def test_shape(self):
        files = self.files()
        self.assertGreaterEqual(len(files), 240)
        for shard in gen_docqa.SHARDS:
            n = sum(1 for f in files if f.startswith(f"shard-{shard}/"))
            self.assertGreaterEqual(n, 75, shard)
        exts = {f.rsplit(".", 1)[1] for f in files}
        self.assertEqual(exts, {"md", "txt", "html"})
        self.assertTrue(all(f.count("/") >= 3 for f in files))
        html_files = [f for f in files if f.endswith(".html")]
        for f in html_files:
            with open(os.path.join(self.out, f), encoding="utf-8") as fh:
                t = fh.read()
            for tag in ["<nav", "<script", "<style", "<h1>"]:
                self.assertIn(tag, t, f)

    def test_every_source_exists_and_states_the_answer(self):
        for i in self.items:
            with open(os.path.join(self.out, i["source"]), encoding="utf-8") as fh:
                terms = gen_docqa.terms(fh.read())
            self.assertTrue(any(gen_docqa.contains(terms, gen_docqa.terms(a))
                                for a in i["answers"]), i)

    def test_twins_are_distractors_in_other_shards(self):
        # The ZX controller asked in shard a has twins with other codes in shards b and c.
        files = self.files()
        first = next(i for i in self.items if i["kind"] == "product")
        directory = os.path.dirname(first["source"]).split("/", 1)[1]
        twins = [f for f in files if f.split("/", 1)[1].startswith(directory + "/")]
        self.assertEqual(sorted(f.split("/")[0] for f in twins), ["shard-a", "shard-b", "shard-c"])

    def test_refuses_to_replace_foreign_shards(self):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "shard-a"))
            with self.assertRaises(SystemExit):
                gen_docqa.write_corpus(d)
            self.assertEqual(os.listdir(d), ["shard-a"])


class Bulk(unittest.TestCase):
    def test_deterministic_count(self):
        with tempfile.TemporaryDirectory() as d:
            gen_docqa.write_bulk(os.path.join(d, "x"), 250)
            gen_docqa.write_bulk(os.path.join(d, "y"), 250)
            self.assertEqual(tree_digest(os.path.join(d, "x")), tree_digest(os.path.join(d, "y")))
            n = sum(len(f) for _, _, f in os.walk(os.path.join(d, "x")))
            self.assertEqual(n, 250)


if __name__ == "__main__":
    unittest.main()
