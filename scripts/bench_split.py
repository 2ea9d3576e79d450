#!/usr/bin/env python3
"""Benchmarks a model split across devices (issue 13): nova's pool over the swarm against
llama.cpp's own ggml-rpc split over plain TCP, in the same run, on loopback with added delay.

For each delay and shard count:
- nova: a gateway `--pool MODEL` (the head) and S workers whose `--max-ram` makes the planner
  give each a set number of layers. Each worker reaches the gateway through
  scripts/delay_proxy.py, so every shard link (libp2p: TCP, pnet, noise, yamux) carries the
  delay. Speed and time to first token come from the gateway's trace of greedy requests that
  generate exactly TOKENS tokens; round trips and ggml-rpc bytes from the pool's link counters
  in /v1/swarm, wire bytes from the proxies.
- llama.cpp: S `nova rpc-shard --listen` servers (llama.cpp's stock `ggml_backend_rpc_start_server`
  over TCP, the code behind its rpc-server), each behind a delay proxy, and the same split on
  the head with `nova ask --rpc` (stock ggml-rpc dialling, no tunnel), timed by `--stats`.

Prints a Markdown report.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

TOKEN = "bench-token"
SECRET = "bench-secret"
PROMPT = "Write a short story about a lighthouse keeper."
MIB = 1 << 20
HERE = os.path.dirname(os.path.abspath(__file__))

# Sizes from `layer_sizes` (crates/model/src/gguf.rs), printed by its test: per-layer weight
# bytes, other bytes, f16 KV bytes per token per layer. The planner's overheads are in
# crates/node/src/pool.rs.
MODELS = {
    "smollm2-135m": {"layers": 30, "layer": 2_216_448, "other": 30_083_328, "kv": 768},
}
HEAD_OVERHEAD = 48 * MIB
SHARD_OVERHEAD = 16 * MIB
POOL_CTX = 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, args, env, out=subprocess.PIPE):
        p = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.DEVNULL, text=True)
        self.procs.append(p)
        return p

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs = []


def wait_line(proc, prefix, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"process exited before printing {prefix!r}")
            continue
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    raise RuntimeError(f"no {prefix!r} within {timeout} s")


def api(url, path, body=None, timeout=300):
    req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {TOKEN}"})
    if body is not None:
        req.data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


def data_dir(models_dir):
    d = tempfile.mkdtemp(prefix="nova-bench-split-")
    os.makedirs(os.path.join(d, "models"))
    for f in os.listdir(models_dir):
        os.symlink(os.path.join(models_dir, f), os.path.join(d, "models", f))
    return d


def env_for(home, threads):
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), "NOVA_HOME": home,
            "NOVA_THREADS": str(threads)}


def split_layers(n_layer, shards):
    """Layers for the head and each shard: shards get n // (S+1) each, the head the rest."""
    if shards == 0:
        return n_layer, []
    k = n_layer // (shards + 1)
    return n_layer - k * shards, [k] * shards


def offers(m, head, shards):
    per = m["layer"] + m["kv"] * POOL_CTX
    head_mb = -(-(m["other"] + HEAD_OVERHEAD + head * per) // MIB)
    shard_mb = [-(-(SHARD_OVERHEAD + k * per) // MIB) for k in shards]
    return head_mb, shard_mb


def proxy(procs, listen, to, delay, stats):
    p = procs.start([sys.executable, os.path.join(HERE, "delay_proxy.py"), "--listen", listen,
                     "--to", to, "--delay-ms", str(delay), "--stats", stats], os.environ.copy())
    wait_line(p, "proxy ")


def wire_bytes(stats_files):
    up = down = 0
    for f in stats_files:
        try:
            with open(f) as fh:
                v = json.load(fh)
            up, down = up + v["up"], down + v["down"]
        except (OSError, ValueError):
            pass
    return up, down


def traffic(url):
    pool = api(url, "/v1/swarm")["pools"][0]
    t = [h.get("traffic") or {} for h in pool["holders"] if not h["head"]]
    return (sum(x.get("round_trips", 0) for x in t), sum(x.get("bytes_to_shard", 0) for x in t),
            sum(x.get("bytes_from_shard", 0) for x in t))


def run_nova(a, m, delay, shards, models_dir):
    head, layers = split_layers(m["layers"], shards)
    head_mb, shard_mb = offers(m, head, layers)
    procs, homes, stats = Procs(), [], []
    try:
        home = data_dir(models_dir)
        homes.append(home)
        gw = procs.start([a.nova, "serve", "--bind", "127.0.0.1:0", "--p2p-listen",
                          "/ip4/127.0.0.1/tcp/0", "--no-local", "--token", TOKEN, "--secret",
                          SECRET, "--pool", a.model, "--max-ram", str(head_mb if shards else 4096),
                          "--pool-ctx", str(POOL_CTX), "--stale-after-ms", "5000"],
                         env_for(home, a.threads))
        url = wait_line(gw, "nova gateway listening on ")
        join = wait_line(gw, "p2p listening on ")
        port, peer = re.match(r"/ip4/127.0.0.1/tcp/(\d+)/p2p/(\w+)", join).groups()
        for i, mb in enumerate(shard_mb):
            pport = free_port()
            stats.append(os.path.join(home, f"proxy{i}.json"))
            proxy(procs, f"127.0.0.1:{pport}", f"127.0.0.1:{port}", delay, stats[-1])
            whome = data_dir(models_dir)
            homes.append(whome)
            w = procs.start([a.nova, "worker", "--join", f"/ip4/127.0.0.1/tcp/{pport}/p2p/{peer}",
                             "--secret", SECRET, "--no-pull", "--model", a.worker_model,
                             "--max-ram", str(mb), "--name", f"shard-{i}", "--heartbeat-ms",
                             "500"], env_for(whome, a.threads))
            wait_line(w, "worker ")
        deadline = time.time() + 180
        while True:
            pool = api(url, "/v1/swarm")["pools"][0]
            if pool["state"] == "ready":
                break
            if time.time() > deadline:
                raise RuntimeError(f"pool not ready: {pool}")
            time.sleep(0.5)
        got = [h["layers"] for h in pool["holders"]]
        if got != [head] + layers:
            raise RuntimeError(f"planned {got}, wanted {[head] + layers}")
        body = {"model": a.model, "prompt": PROMPT,
                "params": {"temperature": 0, "max_tokens": a.tokens, "ignore_eos": True}}
        api(url, "/submit", body)  # warm-up
        t0, w0 = traffic(url) if shards else (0, 0, 0), wire_bytes(stats)
        speeds, ttfts, tokens = [], [], 0
        for _ in range(a.runs):
            v = api(url, "/submit", body)
            att = v["trace"]["attempts"][0]
            gen_ms = att["latency_ms"] - att["ttft_ms"]
            speeds.append((att["tokens"] - 1) / (gen_ms / 1000))
            ttfts.append(att["ttft_ms"])
            tokens += att["tokens"]
        t1, w1 = traffic(url) if shards else (0, 0, 0), wire_bytes(stats)
        return {"split": [head] + layers, "tok_s": statistics.median(speeds),
                "ttft_ms": statistics.median(ttfts), "rt_per_token": (t1[0] - t0[0]) / tokens,
                "to_per_token": (t1[1] - t0[1]) / tokens,
                "from_per_token": (t1[2] - t0[2]) / tokens,
                "wire_per_token": ((w1[0] - w0[0]) + (w1[1] - w0[1])) / tokens}
    finally:
        procs.stop()
        for h in homes:
            shutil.rmtree(h, ignore_errors=True)


def run_llama(a, m, delay, shards, models_dir):
    head, layers = split_layers(m["layers"], shards)
    procs, home = Procs(), data_dir(models_dir)
    try:
        rpc = []
        for i, k in enumerate(layers):
            sport, pport = free_port(), free_port()
            procs.start([a.nova, "rpc-shard", "--listen", f"127.0.0.1:{sport}", "--threads",
                         str(a.threads)], env_for(home, a.threads), out=subprocess.DEVNULL)
            time.sleep(0.5)
            proxy(procs, f"127.0.0.1:{pport}", f"127.0.0.1:{sport}", delay,
                  os.path.join(home, f"proxy{i}.json"))
            rpc += ["--rpc", f"127.0.0.1:{pport}={k}"]
        speeds, ttfts = [], []
        for r in range(a.runs + 1):
            out = subprocess.run([a.nova, "ask", "--no-pull", "-m", a.model, "--ctx",
                                  str(POOL_CTX), "--temperature", "0", "--max-tokens",
                                  str(a.tokens), "--ignore-eos", "--stats", *rpc, PROMPT],
                                 env=env_for(home, a.threads), capture_output=True, text=True,
                                 timeout=600, check=True)
            s = re.search(r"generated at ([\d.]+) tok/s; first token after ([\d.]+) ms",
                          out.stderr)
            if r > 0:  # the first run warms the page cache
                speeds.append(float(s.group(1)))
                ttfts.append(float(s.group(2)))
        return {"split": [head] + layers, "tok_s": statistics.median(speeds),
                "ttft_ms": statistics.median(ttfts)}
    finally:
        procs.stop()
        shutil.rmtree(home, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nova", required=True)
    ap.add_argument("--models-dir", required=True)
    ap.add_argument("--model", default="smollm2-135m", choices=sorted(MODELS))
    ap.add_argument("--worker-model", default="gemma3-270m",
                    help="the workers' own model (another name, so requests reach the pool)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--delays", default="0,2,10")
    ap.add_argument("--shards", default="0,1,2,3")
    a = ap.parse_args()
    m = MODELS[a.model]
    print(f"## Layer split: {a.model}, {a.tokens} tokens greedy, {a.runs} runs (median), "
          f"{a.threads} threads per process, context {POOL_CTX}\n")
    print("| delay each way | shards | layers (head, shards) | nova tok/s | nova TTFT ms | "
          "llama.cpp rpc tok/s | llama.cpp TTFT ms | nova / llama.cpp | round trips / token | "
          "ggml-rpc B / token to, from shards | wire B / token |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for delay in [float(x) for x in a.delays.split(",")]:
        for s in [int(x) for x in a.shards.split(",")]:
            n = run_nova(a, m, delay, s, a.models_dir)
            if s:
                ll = run_llama(a, m, delay, s, a.models_dir)
                ref = f"{ll['tok_s']:.1f} | {ll['ttft_ms']:.0f} | {n['tok_s'] / ll['tok_s']:.2f}"
                traffic_cols = (f"{n['rt_per_token']:.2f} | {n['to_per_token']:.0f}, "
                                f"{n['from_per_token']:.0f} | {n['wire_per_token']:.0f}")
            else:
                ref, traffic_cols = "– | – | –", "0 | – | –"
            print(f"| {delay:g} ms | {s} | {', '.join(map(str, n['split']))} | {n['tok_s']:.1f} | "
                  f"{n['ttft_ms']:.0f} | {ref} | {traffic_cols} |", flush=True)


if __name__ == "__main__":
    main()
