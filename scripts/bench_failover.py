#!/usr/bin/env python3
"""Failover timing (BENCHMARKS.md): a gateway with two remote workers on 127.0.0.1; a fanout-1
request starts on one of them, which is then SIGKILLed. Reports the time from the kill to the
gateway noticing (the failed attempt ends) and to the request completing on the other worker.

Usage: scripts/bench_failover.py [NOVA_BIN] [ROUNDS]"""

import json, os, signal, subprocess, sys, tempfile, threading, time, urllib.request

nova = sys.argv[1] if len(sys.argv) > 1 else "target/release/nova"
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
models = os.path.join(os.environ.get("NOVA_HOME", os.path.expanduser("~/.local/share/nova")), "models")
model = os.path.join(models, "SmolLM2-135M-Instruct.Q4_1.gguf")
TOKEN, SECRET = "bench-token", "bench-secret"
procs = []


def spawn(home, *args):
    p = subprocess.Popen([nova, "--data-dir", home, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    procs.append(p)
    return p


def line(p, prefix):
    for l in p.stdout:
        if l.startswith(prefix):
            return l[len(prefix):].strip()
    sys.exit(f"no {prefix!r}")


def call(url, path, body=None):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode() if body else None,
                                 headers={"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)


def main():
    tmp = tempfile.mkdtemp(prefix="nova-failover-")
    gw = spawn(os.path.join(tmp, "gw"), "serve", "--bind", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0",
               "--no-local", "--token", TOKEN, "--secret", SECRET, "--stale-after-ms", "1500")
    url = line(gw, "nova gateway listening on ")
    join = line(gw, "p2p listening on ")
    results = []
    try:
        for r in range(rounds):
            workers = {}
            for name in ("a", "b"):
                w = spawn(os.path.join(tmp, f"w{r}{name}"), "worker", "--join", join, "--secret", SECRET,
                          "--model", model, "--threads", "1", "--heartbeat-ms", "500", "--name", f"{name}{r}")
                peer = line(w, "worker ").split()[0]
                workers[peer] = w
            while sum(x["state"] == "ready" and x["worker"]["id"] in workers
                      for x in call(url, "/v1/swarm")["workers"]) < 2:
                time.sleep(0.1)
            out = {}
            body = {"prompt": "Write a long story about a dragon.", "fanout": 1,
                    "params": {"temperature": 0, "max_tokens": 96, "ignore_eos": True}}
            t = threading.Thread(target=lambda: out.update(call(url, "/submit", body)))
            start = time.monotonic()
            t.start()
            busy = None
            while busy is None:
                for x in call(url, "/v1/swarm")["workers"]:
                    if x["worker"]["id"] in workers and x["worker"]["queue_depth"] > 0:
                        busy = x["worker"]["id"]
                time.sleep(0.01)
            time.sleep(0.3)
            kill_at = (time.monotonic() - start) * 1000
            workers[busy].send_signal(signal.SIGKILL)
            t.join()
            failed = next(a for a in out["trace"]["attempts"] if a["worker"] == busy)
            detect = failed["latency_ms"] - kill_at
            complete = out["trace"]["latency_ms"] - kill_at
            results.append((detect, complete, out["usage"]["completion_tokens"]))
            print(f"round {r}: killed at {kill_at:.0f} ms; noticed after {detect:.0f} ms; "
                  f"answer complete {complete:.0f} ms after the kill ({out['usage']['completion_tokens']} tokens, "
                  f"winner {out['trace']['winner'][-8:]}, failed attempt: {failed['outcome']})")
            for w in workers.values():
                w.kill()
            time.sleep(0.5)
        det = sorted(x[0] for x in results)
        com = sorted(x[1] for x in results)
        print(f"median: noticed {det[len(det)//2]:.0f} ms after the kill; complete {com[len(com)//2]:.0f} ms after the kill")
    finally:
        for p in procs:
            p.kill()


if __name__ == "__main__":
    main()
