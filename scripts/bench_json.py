#!/usr/bin/env python3
"""JSON answers (BENCHMARKS.md "JSON answers"): what grammar sampling costs and what it buys.

The same chat requests go to `nova serve` (one node, its own engine) and to llama.cpp's
`llama-server`, same GGUF, threads and context, interleaved request by request so drift hits both
alike, in three modes: free text (the prompt asks for JSON), `response_format` json_object, and a
json_schema. Greedy, the same repetition penalty on both sides. For each model, mode and server:
generation speed (completion tokens over wall time of whole requests, prompt included), the ratio
nova / llama-server, and how many answers parse as JSON and match the schema. Prints Markdown.
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import socket
import subprocess
import tempfile
import time
import urllib.parse

SUBJECTS = ["the Eiffel Tower", "a house cat", "the river Nile", "Mount Fuji", "the violin",
            "the planet Mars", "a honey bee", "the city of Lisbon"]

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 60},
        "kind": {"type": "string", "maxLength": 40},
        "facts": {"type": "array", "items": {"type": "string", "maxLength": 80}, "maxItems": 3},
    },
    "required": ["name", "kind", "facts"],
}

MODES = {
    "free text": None,
    "json_object": {"type": "json_object"},
    "json_schema": {"type": "json_schema", "json_schema": {"name": "thing", "schema": SCHEMA}},
}


def matches_schema(v):
    return (isinstance(v, dict) and isinstance(v.get("name"), str) and len(v["name"]) <= 60
            and isinstance(v.get("kind"), str) and len(v["kind"]) <= 40
            and isinstance(v.get("facts"), list) and len(v["facts"]) <= 3
            and all(isinstance(f, str) and len(f) <= 80 for f in v["facts"]))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body, token):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    t0 = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", json.dumps(body), headers)
    resp = conn.getresponse()
    data = resp.read()
    wall = time.perf_counter() - t0
    conn.close()
    if resp.status != 200:
        raise SystemExit(f"{url} answered HTTP {resp.status}: {data[:300]!r}")
    return json.loads(data), wall


def wait_http(url, path, token, deadline_s=120):
    u = urllib.parse.urlparse(url)
    end = time.time() + deadline_s
    while time.time() < end:
        try:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url}{path} never answered")


def start_nova(nova, model, threads, ctx, tmp):
    port = free_port()
    log = open(os.path.join(tmp, "nova.out"), "w")
    p = subprocess.Popen([nova, "--data-dir", os.path.join(tmp, "nova"), "serve", "--bind",
                          f"127.0.0.1:{port}", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--token",
                          "t", "--model", model, "--threads", str(threads), "--ctx", str(ctx),
                          "--parallel", "1"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_http(url, "/v1/models", "t")
    deadline = time.time() + 120
    while '"state":"ready"' not in json.dumps(json.loads(get(url, "/v1/swarm")), separators=(",", ":")):
        if time.time() > deadline:
            raise SystemExit("nova's engine never became ready")
        time.sleep(0.2)
    return p, url


def get(url, path):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("GET", path, headers={"Authorization": "Bearer t"})
    return conn.getresponse().read()


def start_server(server, model, threads, ctx, tmp):
    port = free_port()
    log = open(os.path.join(tmp, "server.out"), "w")
    p = subprocess.Popen([server, "-m", model, "--host", "127.0.0.1", "--port", str(port), "-t",
                          str(threads), "-c", str(ctx), "--parallel", "1"],
                         stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_http(url, "/health", "t")
    return p, url


def body(subject, fmt, tokens, nova):
    b = {"model": "nova", "temperature": 0, "seed": 1, "max_tokens": tokens, "repeat_penalty": 1.1,
         "messages": [{"role": "user", "content":
                       f"Describe {subject} as JSON with the keys name, kind and facts (a list "
                       "of up to three short facts). Answer with the JSON only."}]}
    if fmt is not None:
        b["response_format"] = fmt
    if nova:
        b["nova"] = {"strategy": "race", "fanout": 1}
    return b


def decode(v):
    """Tokens after the first and the time they took, as each server reports it: llama-server's
    own timings, nova's trace (the time from the first token to the end). Prompt processing and
    HTTP are out of it, so answers of different lengths compare."""
    if "timings" in v:
        # llama-server's own predicted_per_second: its clock starts once the first token is out.
        return v["timings"]["predicted_n"], v["timings"]["predicted_ms"] / 1000
    trace = v.get("nova") or {}
    if trace.get("ttft_ms") is None:
        return 0, 0.0
    return max(v["usage"]["completion_tokens"] - 1, 0), (trace["latency_ms"] - trace["ttft_ms"]) / 1000


def measure(args, name, path):
    tmp = tempfile.mkdtemp(prefix="bench-json-")
    procs = []
    try:
        np_, nurl = start_nova(args.nova, path, args.threads, args.ctx, tmp)
        procs.append(np_)
        sp, surl = start_server(args.server, path, args.threads, args.ctx, tmp)
        procs.append(sp)
        stats = {(m, s): {"tokens": 0, "wall": 0.0, "n": 0, "parsed": 0, "valid": 0, "stop": 0,
                          "dec_tokens": 0, "dec_s": 0.0}
                 for m in MODES for s in ("nova", "llama-server")}
        for side, url in (("nova", nurl), ("llama-server", surl)):  # warm-up
            post(url, body(SUBJECTS[0], None, 8, side == "nova"), "t")
        for _ in range(args.rounds):
            for subject in SUBJECTS:
                for mode, fmt in MODES.items():
                    for side, url in (("nova", nurl), ("llama-server", surl)):
                        v, wall = post(url, body(subject, fmt, args.tokens, side == "nova"), "t")
                        st = stats[(mode, side)]
                        text = v["choices"][0]["message"]["content"]
                        st["tokens"] += v["usage"]["completion_tokens"]
                        n, secs = decode(v)
                        st["dec_tokens"] += n
                        st["dec_s"] += secs
                        st["wall"] += wall
                        st["n"] += 1
                        st["stop"] += v["choices"][0]["finish_reason"] == "stop"
                        try:
                            parsed = json.loads(text)
                            st["parsed"] += 1
                            st["valid"] += matches_schema(parsed)
                        except ValueError:
                            pass
        return stats
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nova", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--models", required=True, help="name=path,...")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    print(f"## JSON answers ({started:%Y-%m-%d %H:%M} UTC)\n")
    print(f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"- {len(SUBJECTS)} prompts x {args.rounds} rounds per mode, greedy, repeat_penalty 1.1, "
          f"max_tokens {args.tokens}, {args.threads} threads, ctx {args.ctx}, one sequence; "
          "nova and llama-server interleaved request by request\n")
    for pair in args.models.split(","):
        name, path = pair.split("=", 1)
        stats = measure(args, name, path)
        print(f"### {name}\n")
        print("| mode | server | tok/s, whole requests | nova / llama-server | decode tok/s | "
              "nova / llama-server | tokens per answer | parses | matches schema | "
              "ended by itself |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for mode in MODES:
            speeds, dec = {}, {}
            for side in ("nova", "llama-server"):
                st = stats[(mode, side)]
                speeds[side] = st["tokens"] / st["wall"] if st["wall"] else 0.0
                dec[side] = st["dec_tokens"] / st["dec_s"] if st["dec_s"] else 0.0
            for side in ("nova", "llama-server"):
                st = stats[(mode, side)]
                first = side == "nova"
                ratio = f"{speeds['nova'] / speeds['llama-server']:.2f}" if first else ""
                dratio = (f"{dec['nova'] / dec['llama-server']:.2f}"
                          if first and dec["llama-server"] else "")
                print(f"| {mode} | {side} | {speeds[side]:.1f} | {ratio} | {dec[side]:.1f} | "
                      f"{dratio} | {st['tokens'] / max(st['n'], 1):.0f} | {st['parsed']}/{st['n']} | "
                      f"{st['valid']}/{st['n']} | {st['stop']}/{st['n']} |")
        print()
    ended = datetime.datetime.now(datetime.timezone.utc)
    print(f"Finished {ended:%H:%M} UTC.")


if __name__ == "__main__":
    main()
