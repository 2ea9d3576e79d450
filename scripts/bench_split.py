#!/usr/bin/env python3
"""Benchmarks a model split across devices (issue 13): nova's pool over the swarm against
llama.cpp's own RPC split (its ggml-rpc-server and llama-bench), in the same run, with delay
added on every shard link.

Where: run as root where `ip netns` works, the head runs in network namespace nbsplit-head and
shard i in nbsplit-s<i>, joined by a veth pair (10.77.<i>.1/30 on the head's side, .2/30 on the
shard's). scripts/delay_proxy.py runs in each shard's namespace, so every shard link crosses the
veth and the proxy. Nothing binds outside loopback in the host's namespace; the namespaces are
deleted at exit. Otherwise everything runs on the host's loopback, as the report header says.

For each delay and shard count:
- nova: a gateway `--pool MODEL` (the head) and S workers whose `--max-ram` makes the planner
  give each a set number of layers (from the model's actual per-layer bytes, split_plan.py; the
  plan is checked in /v1/swarm). Each worker joins through its proxy. Speed and time to first
  token come from the gateway's trace of greedy requests that generate exactly TOKENS tokens;
  round trips and ggml-rpc bytes from the pool's link counters in /v1/swarm, wire bytes from
  the proxies.
- llama.cpp: S `ggml-rpc-server` processes (its rpc-server), each behind its proxy, and
  `llama-bench --rpc` on the head with the same layer split (-ngl, -ts) and the output
  projection and embeddings kept on the head's CPU (-ot), as nova keeps them. Its tg figure is
  the speed; its pp figure for the prompt nova was given (prompt tokens / pp tok/s) stands in
  for the time to first token. Its load log (-v) says which device got which layer.

Prints a Markdown report.
"""

import argparse
import atexit
import collections
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import split_plan  # noqa: E402

TOKEN = "bench-token"
SECRET = "bench-secret"
PROMPT = "Write a short story about a lighthouse keeper."
HERE = os.path.dirname(os.path.abspath(__file__))
POOL_CTX = 1024
# The catalog's files (crates/model/src/catalog.rs).
MODELS = {"smollm2-135m": "SmolLM2-135M-Instruct.Q4_1.gguf",
          "gemma3-270m": "gemma-3-270m-q4_k_m.gguf"}
# As nova keeps them on the head (crates/engine/src/backends/llama.rs); a tied model's output
# is token_embd.weight itself.
KEEP_ON_HEAD = r"^(output|token_embd)\.weight$"
NS_HEAD = "nbsplit-head"


def ns_shard(i):
    return f"nbsplit-s{i}"


def ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


class Net:
    """Where each process runs and the addresses the head and shard i reach each other on."""

    def __init__(self, netns):
        self.netns = netns
        self.names = []
        self.next_port = 41000

    def setup(self, shards):
        """Makes the namespaces (again, when a previous run left them) and their veth pairs."""
        self.names = [NS_HEAD] + [ns_shard(i) for i in range(shards)]
        self.teardown()
        self.names = [NS_HEAD] + [ns_shard(i) for i in range(shards)]
        for ns in self.names:
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
        for i in range(shards):
            h, s = f"nbh{i}", f"nbs{i}"
            ip("link", "add", h, "netns", NS_HEAD, "type", "veth", "peer", "name", s, "netns",
               ns_shard(i))
            ip("-n", NS_HEAD, "addr", "add", f"10.77.{i}.1/30", "dev", h)
            ip("-n", NS_HEAD, "link", "set", h, "up")
            ip("-n", ns_shard(i), "addr", "add", f"10.77.{i}.2/30", "dev", s)
            ip("-n", ns_shard(i), "link", "set", s, "up")

    def teardown(self):
        """Deletes the namespaces (their veth pairs go with them). Safe to call twice."""
        for ns in self.names:
            if os.path.exists(f"/run/netns/{ns}"):
                ip("netns", "del", ns, check=False)
        self.names = []

    def head_ns(self):
        return NS_HEAD if self.netns else None

    def shard_ns(self, i):
        return ns_shard(i) if self.netns else None

    def head_addr(self, i):
        """The head's address as shard i reaches it."""
        return f"10.77.{i}.1" if self.netns else "127.0.0.1"

    def shard_addr(self, i):
        """Shard i's address as the head reaches it."""
        return f"10.77.{i}.2" if self.netns else "127.0.0.1"

    def port(self):
        """A port free in whichever namespace asks: fresh namespaces have nothing listening."""
        if not self.netns:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                return s.getsockname()[1]
        self.next_port += 1
        return self.next_port

    @staticmethod
    def wrap(ns, args):
        return ["ip", "netns", "exec", ns, *args] if ns else list(args)


def netns_works():
    if os.geteuid() != 0 or not shutil.which("ip"):
        return False
    probe = "nbsplit-probe"
    try:
        ip("netns", "add", probe)
        ip("-n", probe, "link", "set", "lo", "up")
        return True
    except (OSError, subprocess.CalledProcessError):
        return False
    finally:
        ip("netns", "del", probe, check=False)


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, args, env, out=subprocess.PIPE, err=subprocess.DEVNULL):
        p = subprocess.Popen(args, env=env, stdout=out, stderr=err, text=True)
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
                p.wait()
        self.procs = []


def wait_line(proc, prefix, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args} exited before printing {prefix!r}")
            continue
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    raise RuntimeError(f"no {prefix!r} within {timeout} s")


def wait_listening(proc, port, timeout=60):
    """Waits until `proc` listens on TCP `port`, read from its own namespace's socket table."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited")
        try:
            with open(f"/proc/{proc.pid}/net/tcp") as f:
                for line in f.readlines()[1:]:
                    local, state = line.split()[1], line.split()[3]
                    if state == "0A" and int(local.split(":")[1], 16) == port:
                        return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{proc.args} not listening on {port} within {timeout} s")


# Run inside the head's namespace when the gateway is there: url, path, token in argv, the JSON
# body (or nothing) on stdin, the JSON answer on stdout.
API_IN_NS = """
import json, sys, urllib.request
url, path, token = sys.argv[1:4]
req = urllib.request.Request(url + path, headers={"Authorization": "Bearer " + token})
body = sys.stdin.read()
if body:
    req.data = body.encode()
    req.add_header("Content-Type", "application/json")
with urllib.request.urlopen(req, timeout=float(sys.argv[4])) as r:
    sys.stdout.write(r.read().decode())
"""


def api(url, path, body=None, timeout=300, ns=None):
    if ns:
        out = subprocess.run(Net.wrap(ns, [sys.executable, "-c", API_IN_NS, url, path, TOKEN,
                                           str(timeout)]),
                             input=json.dumps(body) if body is not None else "",
                             capture_output=True, text=True, timeout=timeout + 30)
        if out.returncode != 0:
            raise RuntimeError(f"{path}: {out.stderr.strip()[-500:]}")
        return json.loads(out.stdout)
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


def proxy(procs, ns, listen, to, delay, stats):
    p = procs.start(Net.wrap(ns, [sys.executable, os.path.join(HERE, "delay_proxy.py"),
                                  "--listen", listen, "--to", to, "--delay-ms", str(delay),
                                  "--stats", stats]), os.environ.copy())
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


def traffic(call):
    pool = call("/v1/swarm")["pools"][0]
    t = [h.get("traffic") or {} for h in pool["holders"] if not h["head"]]
    return (sum(x.get("round_trips", 0) for x in t), sum(x.get("bytes_to_shard", 0) for x in t),
            sum(x.get("bytes_from_shard", 0) for x in t))


def run_nova(a, net, sizes, delay, shards):
    n = len(sizes["layers"])
    head, layers = split_plan.split_layers(n, shards)
    head_mb, shard_mb = split_plan.offers(sizes, POOL_CTX, head, layers)
    procs, homes, stats = Procs(), [], []
    try:
        home = data_dir(a.models_dir)
        homes.append(home)
        listen = "/ip4/0.0.0.0/tcp/0" if net.netns else "/ip4/127.0.0.1/tcp/0"
        gw = procs.start(Net.wrap(net.head_ns(), [
            a.nova, "serve", "--bind", "127.0.0.1:0", "--p2p-listen", listen, "--no-local",
            "--token", TOKEN, "--secret", SECRET, "--pool", a.model, "--max-ram",
            str(head_mb if shards else 4096), "--pool-ctx", str(POOL_CTX), "--stale-after-ms",
            "5000"]), env_for(home, a.threads))
        url = wait_line(gw, "nova gateway listening on ")
        join = wait_line(gw, "p2p listening on ")
        port, peer = re.search(r"/tcp/(\d+)/p2p/(\w+)", join).groups()

        def call(path, body=None):
            return api(url, path, body, ns=net.head_ns())

        for i, mb in enumerate(shard_mb):
            pport = net.port()
            stats.append(os.path.join(home, f"proxy{i}.json"))
            proxy(procs, net.shard_ns(i), f"127.0.0.1:{pport}", f"{net.head_addr(i)}:{port}",
                  delay, stats[-1])
            whome = data_dir(a.models_dir)
            homes.append(whome)
            w = procs.start(Net.wrap(net.shard_ns(i), [
                a.nova, "worker", "--join", f"/ip4/127.0.0.1/tcp/{pport}/p2p/{peer}", "--secret",
                SECRET, "--no-pull", "--model", a.worker_model, "--max-ram", str(mb), "--name",
                f"shard-{i}", "--heartbeat-ms", "500"]), env_for(whome, a.threads))
            wait_line(w, "worker ")
        deadline = time.time() + 240
        while True:
            pool = call("/v1/swarm")["pools"][0]
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
        warm = call("/submit", body)
        prompt_tokens = (warm.get("usage") or {}).get("prompt_tokens")
        t0, w0 = traffic(call) if shards else (0, 0, 0), wire_bytes(stats)
        speeds, ttfts, tokens = [], [], 0
        for _ in range(a.runs):
            v = call("/submit", body)
            att = v["trace"]["attempts"][0]
            gen_ms = att["latency_ms"] - att["ttft_ms"]
            speeds.append((att["tokens"] - 1) / (gen_ms / 1000))
            ttfts.append(att["ttft_ms"])
            tokens += att["tokens"]
        t1, w1 = traffic(call) if shards else (0, 0, 0), wire_bytes(stats)
        return {"split": [head] + layers, "offers": [head_mb] + shard_mb,
                "prompt_tokens": prompt_tokens, "tok_s": statistics.median(speeds),
                "ttft_ms": statistics.median(ttfts), "rt_per_token": (t1[0] - t0[0]) / tokens,
                "to_per_token": (t1[1] - t0[1]) / tokens,
                "from_per_token": (t1[2] - t0[2]) / tokens,
                "wire_per_token": ((w1[0] - w0[0]) + (w1[1] - w0[1])) / tokens}
    finally:
        procs.stop()
        for h in homes:
            shutil.rmtree(h, ignore_errors=True)


DEVICE_LOG = re.compile(r"using device (\S+) \(([^)]*)\)")
LAYER_LOG = re.compile(r"layer\s+(\d+) assigned to device ([^,\s]+)")
BUFFER_LOG = re.compile(r"load_tensors:\s+(\S+) model buffer size =\s+([\d.]+) MiB")
OVERRIDE_LOG = re.compile(r"tensor (\S+) \([^)]*\) buffer type overridden to (\S+)")


def llama_placement(log, n_layer):
    """What llama.cpp's load log (llama-bench -v) says it did with the first load (llama-bench
    loads again for each parameter set): the layer count of each device in order (the CPU
    first, then the RPC devices as it numbered them), the device of the output layer, each
    device's endpoint and model buffer MiB, and the tensors -ot moved."""
    endpoints = collections.OrderedDict()
    for m in DEVICE_LOG.finditer(log):
        endpoints.setdefault(m.group(1), m.group(2))
    layers, output, seen = collections.OrderedDict(), None, set()
    for m in LAYER_LOG.finditer(log):
        il, dev = int(m.group(1)), m.group(2)
        if il in seen:
            break
        seen.add(il)
        if il < n_layer:
            layers[dev] = layers.get(dev, 0) + 1
        else:
            output = dev
    buffers = {}
    for m in BUFFER_LOG.finditer(log):
        name, mib = m.group(1), float(m.group(2))
        # RPC buffers are named after the server's device and endpoint, e.g. RPC0[10.77.1.2:41004]
        dev = next((d for d, e in endpoints.items() if name.endswith(f"[{e}]")), name)
        if dev in buffers:
            break
        buffers[dev] = mib
    overrides = sorted({f"{m.group(1)}={m.group(2)}" for m in OVERRIDE_LOG.finditer(log)})
    return {"layers": dict(layers), "output": output, "endpoints": dict(endpoints),
            "buffers": buffers, "overrides": overrides}


def run_llama(a, net, n_layer, delay, shards, prompt_tokens):
    head, layers = split_plan.split_layers(n_layer, shards)
    procs, home = Procs(), tempfile.mkdtemp(prefix="nova-bench-split-")
    try:
        endpoints = []
        for i in range(shards):
            sport, pport = net.port(), net.port()
            srv = procs.start(Net.wrap(net.shard_ns(i), [
                os.path.join(a.llama_bin, "ggml-rpc-server"), "-H", "127.0.0.1", "-p", str(sport),
                "-t", str(a.threads)]), os.environ.copy(), out=subprocess.DEVNULL)
            wait_listening(srv, sport)
            proxy(procs, net.shard_ns(i), f"{net.shard_addr(i)}:{pport}", f"127.0.0.1:{sport}",
                  delay, os.path.join(home, f"proxy{i}.json"))
            endpoints.append(f"{net.shard_addr(i)}:{pport}")
        args = [os.path.join(a.llama_bin, "llama-bench"), "-m", a.model_path, "-p",
                str(prompt_tokens), "-n", str(a.tokens), "-r", str(a.runs), "-t", str(a.threads),
                "-o", "json", "-v"]
        if shards:
            args += ["--rpc", ",".join(endpoints), "-ngl", str(sum(layers) + 1), "-ts",
                     "/".join(map(str, split_plan.tensor_split(layers))), "-ot",
                     f"{KEEP_ON_HEAD}=CPU"]
        else:
            args += ["-ngl", "0"]
        out = subprocess.run(Net.wrap(net.head_ns(), args), capture_output=True, text=True,
                             timeout=1800)
        if out.returncode != 0:
            raise RuntimeError(f"llama-bench failed: {out.stderr.strip()[-2000:]}")
        tests = json.loads(out.stdout)
        pp = next(t for t in tests if t["n_prompt"] > 0 and t["n_gen"] == 0)
        tg = next(t for t in tests if t["n_gen"] > 0 and t["n_prompt"] == 0)
        placement = llama_placement(out.stderr, n_layer)
        want = [head] + layers
        got = list(placement["layers"].values())
        return {"split": want, "placed": got, "placement": placement,
                "tok_s": statistics.median(tg["samples_ts"]),
                "ttft_ms": prompt_tokens / statistics.median(pp["samples_ts"]) * 1000}
    finally:
        procs.stop()
        shutil.rmtree(home, ignore_errors=True)


def describe_placement(ll, layer_bytes):
    """llama.cpp's placement in words; each RPC device's weights are checked against what its
    layers weigh in the GGUF (the CPU's buffer is the whole mapped file, so it is left out)."""
    p = ll["placement"]
    parts, first = [], 0
    for dev, n in p["layers"].items():
        text = f"{dev} {n} layers"
        if dev in p["endpoints"]:
            text = f"{dev} ({p['endpoints'][dev]}) {n} layers"
            if dev in p["buffers"]:
                want = sum(layer_bytes[first:first + n]) / split_plan.MIB
                text += f", {p['buffers'][dev]:.2f} MiB of weights ({want:.2f} in the GGUF)"
        parts.append(text)
        first += n
    text = "; ".join(parts) or "no layer log"
    if p["output"]:
        text += f"; output layer on {p['output']}"
    if p["overrides"]:
        text += " with " + ", ".join(p["overrides"])
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nova", required=True)
    ap.add_argument("--llama-bin", required=True,
                    help="bin directory of ggml-rpc-server and llama-bench built with GGML_RPC "
                         "(scripts/build_llama_tools.sh --rpc)")
    ap.add_argument("--models-dir", required=True)
    ap.add_argument("--model", default="smollm2-135m", choices=sorted(MODELS))
    ap.add_argument("--worker-model",
                    help="the workers' own model, another than --model so that requests reach "
                         "the pool (default: the other catalog model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--delays", default="0,2,10")
    ap.add_argument("--shards", default="0,1,2,3")
    ap.add_argument("--loopback", action="store_true",
                    help="everything on the host's loopback, even where namespaces would work")
    a = ap.parse_args()
    a.worker_model = a.worker_model or next(m for m in sorted(MODELS) if m != a.model)
    a.model_path = os.path.join(a.models_dir, MODELS[a.model])
    a.nova = os.path.abspath(a.nova)
    a.llama_bin = os.path.abspath(a.llama_bin)
    sizes = split_plan.layer_sizes(a.model_path)
    n_layer = len(sizes["layers"])
    delays = [float(x) for x in a.delays.split(",")]
    shard_counts = [int(x) for x in a.shards.split(",")]

    net = Net(netns=not a.loopback and netns_works())
    atexit.register(net.teardown)

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    try:
        if net.netns:
            net.setup(max(shard_counts))
        report(a, net, sizes, n_layer, delays, shard_counts)
    finally:
        net.teardown()


def report(a, net, sizes, n_layer, delays, shard_counts):
    try:
        with open(os.path.join(os.path.dirname(a.llama_bin), "SOURCE")) as f:
            source = f.read().strip()
    except OSError:
        source = "unknown source"
    where = ("network namespaces: head in nbsplit-head, shard i in nbsplit-s<i>, joined by veth "
             "pairs 10.77.<i>.1/30 - 10.77.<i>.2/30; each shard's delay proxy runs in its "
             "namespace" if net.netns else
             "host loopback (no network namespaces: not root, or `ip netns` failed), delay "
             "proxies on 127.0.0.1")
    runs = f"{a.runs} run" + ("s" if a.runs != 1 else "")
    print(f"## Layer split: {a.model} ({n_layer} layers), {a.tokens} tokens greedy, {runs} "
          f"(median), {a.threads} threads per process\n")
    print(f"- Links: {where}; the delay is added once each way (a round trip gains twice it).")
    print(f"- nova: gateway `--pool {a.model} --pool-ctx {POOL_CTX}` in the head's place, workers "
          f"through their proxies; one warm-up request, then {runs} of /submit; speed and TTFT "
          f"from the gateway's trace.")
    print(f"- llama.cpp: {source}. Shards `ggml-rpc-server -H 127.0.0.1 -p PORT -t {a.threads}` "
          f"behind the proxy; head `llama-bench -m MODEL --rpc ADDR:PORT,... -ngl <shard layers "
          f"+ 1> -ts <shard layers, the last + 1> -ot \"{KEEP_ON_HEAD}=CPU\" -p <nova's prompt "
          f"tokens> -n {a.tokens} -r {runs.split()[0]} -t {a.threads} -o json -v` (unsplit: -ngl "
          f"0, no --rpc), its own warm-up included, its context p + n tokens. Speed is its tg "
          f"figure (median of the samples); TTFT is prompt tokens / its pp tok/s (prompt "
          f"evaluation only: no sampling, no HTTP). The output projection and embeddings stay "
          f"on the head's CPU, as nova keeps them; in both the output layer's other tensor (the "
          f"final norm) goes to the last shard. The placement it logged is listed below.")
    print("- Shard kernels differ for K-quants: nova's shards repack Q4_K weights for the CPU's "
          "kernels as the head does (crates/rpc/cpp/repack.inc); stock ggml-rpc-server keeps "
          "them in plain CPU buffers, unrepacked (Q4_1 is not repacked by either).")
    print(f"- Workers' own model: {a.worker_model}.\n")
    print("| delay each way | shards | layers (head, shards) | nova tok/s | nova TTFT ms | "
          "llama.cpp rpc tok/s | llama.cpp TTFT ms | nova / llama.cpp | round trips / token | "
          "ggml-rpc B / token to, from shards | wire B / token |")
    print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    notes, prompt_tokens = [], None
    for delay in delays:
        for s in shard_counts:
            n = run_nova(a, net, sizes, delay, s)
            prompt_tokens = n["prompt_tokens"] or 32
            ll = run_llama(a, net, n_layer, delay, s, prompt_tokens)
            placed = ll["placed"]
            mark = "" if placed == ll["split"] else " (!)"
            ref = (f"{ll['tok_s']:.1f}{mark} | {ll['ttft_ms']:.0f} | "
                   f"{n['tok_s'] / ll['tok_s']:.2f}")
            traffic_cols = "0 | – | –"
            if s:
                traffic_cols = (f"{n['rt_per_token']:.2f} | {n['to_per_token']:.0f}, "
                                f"{n['from_per_token']:.0f} | {n['wire_per_token']:.0f}")
            if s or mark:
                verdict = ("as nova's" if not mark else "**not confirmed: no layer log**"
                           if not placed else "**not the split wanted**")
                placed_text = describe_placement(ll, sizes["layers"])
                notes.append(f"{delay:g} ms, {s} shards: nova offers {n['offers']} MiB, planned "
                             f"{n['split']}; llama.cpp placed {placed_text}, {verdict}")
            print(f"| {delay:g} ms | {s} | {', '.join(map(str, n['split']))} | {n['tok_s']:.1f} | "
                  f"{n['ttft_ms']:.0f} | {ref} | {traffic_cols} |", flush=True)
    print(f"\nPrompt: {prompt_tokens} tokens after the chat template (nova's count, given to "
          f"llama-bench -p).\n")
    print("Placement, per row (llama.cpp's from its load log):")
    for line in notes:
        print(f"- {line}")


if __name__ == "__main__":
    main()
