"""Checks of split_plan.py (bench_split.py's layer sizes and offers) on a fabricated GGUF file
and, when this machine has them, the catalog models.

    python3 -m unittest discover -s scripts -p 'test_*.py'
"""
import collections
import os
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import split_plan  # noqa: E402

MIB = split_plan.MIB


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def write_gguf(path, meta, tensors):
    """A GGUF v3 header: `meta` as (key, type, packed value) and `tensors` as (name, dims,
    type); no tensor data (the reader reads only the header)."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta))
    for key, ty, value in meta:
        out += gguf_string(key) + struct.pack("<I", ty) + value
    for name, dims, ty in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", ty, 0)
    with open(path, "wb") as f:
        f.write(out)


def u32(key, v):
    return (key, 4, struct.pack("<I", v))


class LayerSizes(unittest.TestCase):
    def test_fabricated_file(self):
        meta = [
            ("general.architecture", 8, gguf_string("llama")),
            # an array of strings and one of floats are skipped
            ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 2) + gguf_string("a") +
             gguf_string("bc")),
            ("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, 3) + b"\0" * 12),
            u32("llama.block_count", 2), u32("llama.embedding_length", 64),
            u32("llama.feed_forward_length", 128), u32("llama.attention.head_count", 4),
            u32("llama.attention.head_count_kv", 2),
        ]
        tensors = [
            ("token_embd.weight", [64, 100], 3),   # Q4_1: 6400 / 32 * 20
            ("blk.0.attn_q.weight", [64, 64], 12),  # Q4_K: 4096 / 256 * 144
            ("blk.0.attn_norm.weight", [64], 0),    # F32
            ("blk.1.ffn_up.weight", [64, 128], 14),  # Q6_K: 8192 / 256 * 210
            ("output_norm.weight", [64], 0),
        ]
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.gguf")
            write_gguf(path, meta, tensors)
            s = split_plan.layer_sizes(path)
        self.assertEqual(s["layers"], [4096 // 256 * 144 + 256, 8192 // 256 * 210])
        self.assertEqual(s["other"], 6400 // 32 * 20 + 256)
        self.assertEqual(s["kv"], 2 * (2 * 16 + 2 * 16))  # head size 64 / 4
        self.assertEqual(s["activation"], 4 * (3 * 128 + 4 * 64))

    def test_not_gguf(self):
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"nope" + b"\0" * 32)
            f.flush()
            with self.assertRaises(ValueError):
                split_plan.layer_sizes(f.name)


# Unequal layers, as Gemma 3's: every third one larger.
SIZES = {"layers": [(4 if i % 3 == 0 else 3) * MIB + 512 * 1024 for i in range(18)],
         "other": 170 * MIB, "kv": 1024, "activation": 40960}


class Offers(unittest.TestCase):
    def test_offers_plan_the_split_wanted(self):
        for sizes in (SIZES, dict(SIZES, layers=[2_216_448] * 30, activation=27648, kv=768)):
            n = len(sizes["layers"])
            for shards in range(4):
                head, layers = split_plan.split_layers(n, shards)
                head_mb, shard_mb = split_plan.offers(sizes, 1024, head, layers)
                self.assertEqual(split_plan.plan(sizes, 1024, head_mb, shard_mb),
                                 [head] + layers if layers else [n])
                self.assertEqual(len(set(shard_mb)), min(1, shards))

    def test_head_offer_covers_embeddings_and_overhead(self):
        head_mb, _ = split_plan.offers(SIZES, 1024, 9, [9])
        cost = split_plan.costs(SIZES, 1024)
        self.assertEqual(head_mb, -(-(170 * MIB + 48 * MIB + sum(cost[:9])) // MIB))
        # a MiB less holds one layer fewer
        self.assertEqual(split_plan.plan(SIZES, 1024, head_mb - 1, [200])[0], 8)

    def test_shard_overhead_from_activations(self):
        self.assertEqual(split_plan.shard_overhead(SIZES), 20 * MIB)
        self.assertEqual(split_plan.shard_overhead(dict(SIZES, activation=1000)), 16 * MIB)

    def test_unequal_shards_refused(self):
        with self.assertRaises(ValueError):
            split_plan.offers(SIZES, 1024, 8, [6, 4])


class LlamaSplit(unittest.TestCase):
    def test_tensor_split_places_exact_counts(self):
        for n in (18, 30):
            for shards in (1, 2, 3):
                head, layers = split_plan.split_layers(n, shards)
                got = split_plan.llama_assignment(n, sum(layers) + 1,
                                                  split_plan.tensor_split(layers))
                self.assertEqual(got[:head], [None] * head)
                c = collections.Counter(got[head:])
                self.assertEqual([c[i] for i in range(shards)], layers)

    def test_plain_counts_would_shift_a_layer(self):
        # Without the output layer's extra share the first shard takes one layer too many.
        got = split_plan.llama_assignment(30, 21, [10, 10])
        self.assertEqual(collections.Counter(got)[0], 11)


class CatalogModels(unittest.TestCase):
    def test_known_sizes_when_present(self):
        d = os.path.join(os.environ.get("HOME", "/"), ".local/share/nova/models")
        path = os.path.join(d, "SmolLM2-135M-Instruct.Q4_1.gguf")
        if not os.path.exists(path):
            self.skipTest("SmolLM2 not downloaded")
        s = split_plan.layer_sizes(path)
        self.assertEqual((len(s["layers"]), s["layers"][0], s["other"], s["kv"]),
                         (30, 2_216_448, 30_083_328, 768))


if __name__ == "__main__":
    unittest.main()
