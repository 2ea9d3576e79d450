#!/usr/bin/env python3
"""Compare `nova bench engine --concurrency` with llama.cpp's `llama-server -np C`: same GGUF,
same threads, same context per sequence, same prompts, same machine and run, interleaved round
by round so drift hits both alike. C streamed requests of N tokens arrive at once; the figures
are aggregate tokens per second (all tokens over the wall time of the round) and each stream's
time to first token. Prints a Markdown report for BENCHMARKS.md.

nova is measured in process (no HTTP); llama-server over loopback HTTP with streaming, which
costs it a little. The prompts are those of `nova bench engine` (crates/cli/src/cmd/bench/
concurrency.rs): raw text that differs from its first words, so neither side can reuse a
prefix, and `cache_prompt` is off for llama-server so a round does not reuse the previous one."""

import argparse
import datetime
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time


def prompt(rnd, i):
    return f"Story {rnd}.{i}: once upon a time, in a village by the sea, there lived a"


def percentile(v, p):
    v = sorted(v)
    return v[round((len(v) - 1) * p)] if v else 0.0


def nova_levels(nova, model, threads, ctx, levels, tokens, runs):
    out = subprocess.run([nova, "bench", "engine", "--no-pull", "--model", model, "--threads",
                          str(threads), "--ctx", str(ctx), "--concurrency", levels,
                          "--stream-tokens", str(tokens), "--runs", str(runs), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return {l["concurrency"]: l for l in map(json.loads, out.splitlines())}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stream(port, text, tokens, t0, out, i):
    """One streamed completion; stores (tokens, ttft seconds) in out[i]."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = json.dumps({"prompt": text, "n_predict": tokens, "temperature": 0, "ignore_eos": True,
                       "stream": True, "cache_prompt": False})
    conn.request("POST", "/completion", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise SystemExit(f"llama-server answered HTTP {resp.status}: {resp.read()[:200]}")
    n, ttft = 0, None
    for line in resp:
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        ev = json.loads(line[6:])
        if ev.get("content"):
            ttft = ttft if ttft is not None else time.perf_counter() - t0
        if ev.get("stop"):
            n = ev.get("tokens_predicted", n)
            break
    conn.close()
    out[i] = (n, ttft if ttft is not None else time.perf_counter() - t0)


def server_round(port, c, tokens, rnd):
    out = [None] * c
    t0 = time.perf_counter()
    ts = [threading.Thread(target=stream, args=(port, prompt(rnd, i), tokens, t0, out, i))
          for i in range(c)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    if any(o is None for o in out):
        raise SystemExit("a llama-server stream failed")
    return sum(o[0] for o in out), wall, [o[1] * 1000 for o in out]


def server_level(binary, path, threads, ctx, c, tokens, runs):
    port = free_port()
    proc = subprocess.Popen([binary, "-m", path, "-t", str(threads), "-tb", str(threads),
                             "-c", str(ctx * c), "-np", str(c), "-b", "512", "-ub", "512",
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline or proc.poll() is not None:
                raise SystemExit("llama-server did not start")
            time.sleep(0.2)
        server_round(port, c, tokens, 0)
        gen, wall, ttft = 0, 0.0, []
        for rnd in range(1, runs + 1):
            n, w, t = server_round(port, c, tokens, rnd)
            gen, wall, ttft = gen + n, wall + w, ttft + t
        return {"tokens_per_s": gen / wall, "ttft_p50_ms": percentile(ttft, 0.5),
                "ttft_p95_ms": percentile(ttft, 0.95)}
    finally:
        proc.terminate()
        proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--nova", required=True)
    ap.add_argument("--server", required=True, help="llama-server binary")
    ap.add_argument("--models", default="smollm2-135m,gemma3-270m")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=2048, help="context per sequence")
    ap.add_argument("--concurrency", default="1,4,8,16")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3, help="timed rounds per level")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved nova/llama-server rounds")
    a = ap.parse_args()
    levels = [int(c) for c in a.concurrency.split(",")]

    listing = subprocess.run([a.nova, "model", "list", "--json"], check=True,
                             capture_output=True, text=True).stdout
    paths = {m["name"]: m["path"] for m in map(json.loads, listing.splitlines()) if m["present"]}
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    print(f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"- machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(f"- threads {a.threads}, context {a.ctx} per sequence, {a.tokens} tokens a stream, "
          f"{a.runs} timed rounds per level after a warm-up, {a.rounds} interleaved rounds")
    print(f"- command: scripts/bench_batching.sh (THREADS={a.threads} CTX={a.ctx} "
          f"CONCURRENCY={a.concurrency} RUNS={a.runs} ROUNDS={a.rounds} MODELS={a.models})")
    print()
    for model in a.models.split(","):
        if model not in paths:
            sys.exit(f"error: model {model} is not pulled (nova model pull {model})")
        nova = {c: [] for c in levels}
        ref = {c: [] for c in levels}
        for _ in range(a.rounds):
            for c, l in nova_levels(a.nova, model, a.threads, a.ctx, a.concurrency, a.tokens,
                                    a.runs).items():
                nova[c].append(l)
            for c in levels:
                ref[c].append(server_level(a.server, paths[model], a.threads, a.ctx, c, a.tokens,
                                           a.runs))
        print(f"### {model} (`{os.path.basename(paths[model])}`)")
        print()
        print("| C | nova tok/s | llama-server -np C tok/s | ratio | nova TTFT p50 / p95 ms "
              "| llama-server TTFT p50 / p95 ms |")
        print("| --- | --- | --- | --- | --- | --- |")
        for c in levels:
            mean = lambda xs, k: statistics.mean(x[k] for x in xs)
            nt, rt = mean(nova[c], "tokens_per_s"), mean(ref[c], "tokens_per_s")
            print(f"| {c} | {nt:.1f} | {rt:.1f} | **{nt / rt:.2f}** "
                  f"| {mean(nova[c], 'ttft_p50_ms'):.0f} / {mean(nova[c], 'ttft_p95_ms'):.0f} "
                  f"| {mean(ref[c], 'ttft_p50_ms'):.0f} / {mean(ref[c], 'ttft_p95_ms'):.0f} |")
        print()


if __name__ == "__main__":
    main()
