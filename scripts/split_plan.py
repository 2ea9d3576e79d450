"""Layer sizes of a GGUF model and the memory offers that make nova's pool planner split it a
chosen way, for scripts/bench_split.py.

The sizes are summed as crates/model/src/gguf.rs `layer_sizes` sums them (weight bytes of the
tensors named `blk.<N>.*`, everything else on the head, f16 KV bytes per token per layer, and an
upper bound on a batch's activations per token), and the planner is the one of
crates/router/src/split.rs with the overheads of crates/node/src/pool.rs. Both are reimplemented
here only as far as a benchmark needs them; the benchmark checks the plan the gateway actually
made against the one wanted.
"""

import struct

MIB = 1 << 20
HEAD_OVERHEAD = 48 * MIB
SHARD_OVERHEAD = 16 * MIB
POOL_UBATCH = 512

# (elements per block, bytes per block) of the ggml tensor types in use (ggml-common.h).
BLOCKS = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
    15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18),
    21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4),
    27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66),
    39: (32, 17),
}

# GGUF metadata value types: struct format of the fixed-size ones.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
            11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


class _Reader:
    def __init__(self, f):
        self.f = f

    def take(self, fmt):
        size = struct.calcsize(fmt)
        data = self.f.read(size)
        if len(data) != size:
            raise ValueError("truncated GGUF header")
        return struct.unpack(fmt, data)[0]

    def string(self):
        n = self.take("<Q")
        data = self.f.read(n)
        if len(data) != n:
            raise ValueError("truncated GGUF header")
        return data.decode("utf-8", "replace")

    def value(self, ty):
        if ty in _SCALARS:
            return self.take(_SCALARS[ty])
        if ty == _STRING:
            return self.string()
        if ty == _ARRAY:
            inner, n = self.take("<I"), self.take("<Q")
            if inner in _SCALARS:  # skipped whole: token scores and the like can be long
                size = struct.calcsize(_SCALARS[inner]) * n
                self.f.seek(size, 1)
                return None
            for _ in range(n):
                self.value(inner)
            return None
        raise ValueError(f"unknown GGUF value type {ty}")


def layer_sizes(path):
    """{"layers": [bytes of blk.N.*], "other": bytes, "kv": f16 KV bytes per token per layer,
    "activation": f32 activation bytes per token} of the GGUF file at `path`."""
    with open(path, "rb") as f:
        r = _Reader(f)
        if f.read(4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        version = r.take("<I")
        if version < 2:
            raise ValueError(f"GGUF version {version} is not supported")
        n_tensors, n_kv = r.take("<Q"), r.take("<Q")
        meta = {}
        for _ in range(n_kv):
            key = r.string()
            v = r.value(r.take("<I"))
            if key not in meta:
                meta[key] = v
        layers, other = [], 0
        for _ in range(n_tensors):
            name = r.string()
            dims = [r.take("<Q") for _ in range(r.take("<I"))]
            ty = r.take("<I")
            r.take("<Q")  # offset
            elements = 1
            for d in dims:
                elements *= d
            if ty not in BLOCKS:
                raise ValueError(f"tensor {name} has a type of unknown size ({ty})")
            bs, ts = BLOCKS[ty]
            nbytes = -(-elements // bs) * ts
            idx = _layer_index(name)
            if idx is None:
                other += nbytes
            else:
                layers += [0] * (idx + 1 - len(layers))
                layers[idx] += nbytes
    arch = meta.get("general.architecture", "")

    def get(suffix):
        v = meta.get(f"{arch}.{suffix}")
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    return {"layers": layers, "other": other, "kv": _kv_bytes(get), "activation": _act_bytes(get)}


def _layer_index(name):
    if not name.startswith("blk."):
        return None
    digits = name[4:].split(".")[0]
    return int(digits) if digits.isdigit() else None


def _kv_bytes(get):
    n_head = get("attention.head_count")
    n_kv = get("attention.head_count_kv") or n_head
    if n_kv is None:
        return 0
    emb = get("embedding_length")
    head_size = emb // n_head if n_head and emb is not None else None
    k = get("attention.key_length") or head_size
    v = get("attention.value_length") or head_size
    if k is None or v is None:
        return 0
    return 2 * (n_kv * k + n_kv * v)


def _act_bytes(get):
    n_embd = get("embedding_length") or 0
    n_ff = get("feed_forward_length") or 0
    h, k = get("attention.head_count"), get("attention.key_length")
    q = h * k if h is not None and k is not None else n_embd
    return 4 * (3 * n_ff + 4 * max(n_embd, q))


def shard_overhead(sizes):
    return max(SHARD_OVERHEAD, sizes["activation"] * POOL_UBATCH)


def costs(sizes, n_ctx):
    """What each layer costs where it is held: its weights and its KV cache for `n_ctx`."""
    return [w + sizes["kv"] * n_ctx for w in sizes["layers"]]


def split_layers(n_layer, shards):
    """Layers for the head and each shard: shards get n // (S+1) each, the head the rest."""
    if shards == 0:
        return n_layer, []
    k = n_layer // (shards + 1)
    return n_layer - k * shards, [k] * shards


def fill(cost, start, budget):
    """How many layers from `start` fit in `budget` bytes (split.rs `fill`)."""
    used = taken = 0
    for c in cost[start:]:
        used += c
        if used > budget:
            break
        taken += 1
    return taken


def plan(sizes, n_ctx, head_mb, shard_mbs):
    """The layer counts [head, shard...] the planner gives for these offers, shards taken in
    the order given (the benchmark gives them all the same offer, so the planner's ordering of
    them by offer and speed does not change the counts), or None when the layers do not fit."""
    cost = costs(sizes, n_ctx)
    head_fixed = sizes["other"] + HEAD_OVERHEAD
    head_cap = head_mb * MIB
    if head_fixed > head_cap:
        return None
    head = fill(cost, 0, head_cap - head_fixed)
    if head == len(cost):
        return [head]
    counts, nxt, over = [head], head, shard_overhead(sizes)
    for mb in shard_mbs:
        if nxt == len(cost):
            break
        if mb * MIB < over:
            continue
        took = fill(cost, nxt, mb * MIB - over)
        if took:
            counts.append(took)
            nxt += took
    return counts if nxt == len(cost) else None


def offers(sizes, n_ctx, head, shards):
    """MiB offers (head, [shard...]) under which the planner gives the head `head` layers and
    each shard its count in `shards`: each one the bytes of the layers it should hold, rounded
    up to a MiB. All shards hold the same number of layers and get one offer, the most any of
    their ranges needs, so it does not matter in which order the planner takes them. Raises
    ValueError when no such offers exist (a layer costing less than the rounding, say)."""
    cost = costs(sizes, n_ctx)
    if head + sum(shards) != len(cost) or len(set(shards)) > 1:
        raise ValueError(f"cannot offer for {head} + {shards} of {len(cost)} layers")
    head_mb = -(-(sizes["other"] + HEAD_OVERHEAD + sum(cost[:head])) // MIB)
    shard_mb = []
    if shards:
        over, k = shard_overhead(sizes), shards[0]
        need = max(sum(cost[s:s + k]) for s in range(head, len(cost), k))
        shard_mb = [-(-(over + need) // MIB)] * len(shards)
    got = plan(sizes, n_ctx, head_mb, shard_mb)
    if got != [head] + shards:
        raise ValueError(f"offers {head_mb}, {shard_mb} MiB plan {got}, not {[head] + shards}")
    return head_mb, shard_mb


def tensor_split(shards):
    """llama.cpp's --tensor-split for these shard layer counts with -ngl sum(shards)+1: it
    splits the offloaded layers plus the output layer by these proportions (upper_bound over
    the cumulative fractions in llama-model.cpp), so the last shard gets one more share, for the
    output layer, as nova's devices report (crates/rpc/src/ffi.rs)."""
    return shards[:-1] + [shards[-1] + 1] if shards else []


def llama_assignment(n_layer, ngl, ts):
    """Device index for each repeating layer (None: the CPU) as llama.cpp assigns them for
    -ngl `ngl` and -ts `ts`, in float arithmetic as it does."""
    f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]  # noqa: E731
    start = max(n_layer + 1 - ngl, 0)
    act = min(ngl, n_layer + 1)
    total, splits = 0.0, []
    for t in ts:
        total = f32(total + t)
        splits.append(total)
    splits = [f32(s / total) for s in splits]
    out = []
    for il in range(n_layer):
        if il < start or il - start >= act:
            out.append(None)
            continue
        v = f32(float(il - start) / act)
        out.append(next((i for i, s in enumerate(splits) if s > v), len(splits) - 1))
    return out
