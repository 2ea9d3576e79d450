#!/usr/bin/env python3
"""Compare `nova bench engine` with llama.cpp's `llama-bench`: same GGUF files, same threads,
same machine, same run, interleaved round by round so drift hits both alike. Prints a Markdown
report (the figures in BENCHMARKS.md come from it)."""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys


def run(cmd):
    """Runs cmd; returns (stdout, peak RSS in KiB of that child alone, from wait4)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed with exit code {p.returncode}")
    return out, usage.ru_maxrss


def nova_bench(nova, model, threads, runs, pp, tg):
    out, rss = run([nova, "bench", "engine", "--no-pull", "--model", model, "--threads", str(threads),
                    "--runs", str(runs), "--pp", pp, "--tg", tg, "--json"])
    return {t["name"]: t["samples"] for t in json.loads(out)["tests"]}, rss


def llama_bench(binary, path, threads, runs, pp, tg):
    out, rss = run([binary, "-m", path, "-t", str(threads), "-r", str(runs), "-p", pp, "-n", tg,
                    "-o", "json"])
    res = {}
    for t in json.loads(out):
        name = f"pp{t['n_prompt']}" if t["n_prompt"] else f"tg{t['n_gen']}"
        res[name] = t["samples_ts"]
    return res, rss


def fmt(samples):
    m = statistics.mean(samples)
    sd = statistics.stdev(samples) if len(samples) > 1 else 0.0
    return m, f"{m:.1f} ± {sd:.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--nova", required=True)
    ap.add_argument("--ref", action="append", required=True,
                    help="LABEL=PATH of a llama-bench binary (repeatable)")
    ap.add_argument("--models", default="smollm2-135m,gemma3-270m")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pp", default="128,512")
    ap.add_argument("--tg", default="128")
    a = ap.parse_args()
    refs = [r.split("=", 1) for r in a.ref]

    listing = [json.loads(l) for l in run([a.nova, "model", "list", "--json"])[0].splitlines()]
    paths = {m["name"]: m["path"] for m in listing if m["present"]}

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"- machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(f"- threads: {a.threads}; {a.runs} timed runs per test after a warm-up, {a.rounds} interleaved rounds")
    print(f"- command: scripts/bench_engine.sh (THREADS={a.threads} RUNS={a.runs} ROUNDS={a.rounds})")
    print()
    for model in a.models.split(","):
        if model not in paths:
            sys.exit(f"error: model {model} is not pulled (nova model pull {model})")
        nova = {}
        ref = {label: {} for label, _ in refs}
        rss = {"nova": 0, **{label: 0 for label, _ in refs}}
        for _ in range(a.rounds):
            res, r = nova_bench(a.nova, model, a.threads, a.runs, a.pp, a.tg)
            rss["nova"] = max(rss["nova"], r)
            for k, v in res.items():
                nova.setdefault(k, []).extend(v)
            for label, binary in refs:
                res, r = llama_bench(binary, paths[model], a.threads, a.runs, a.pp, a.tg)
                rss[label] = max(rss[label], r)
                for k, v in res.items():
                    ref[label].setdefault(k, []).extend(v)
        print(f"### {model} (`{os.path.basename(paths[model])}`)")
        print()
        head = "| test | nova tok/s | " + " | ".join(f"{l} tok/s | ratio vs {l}" for l, _ in refs) + " |"
        print(head)
        print("|" + " --- |" * (2 + 2 * len(refs)))
        for test in nova:
            nm, ns = fmt(nova[test])
            cells = []
            for label, _ in refs:
                rm, rs = fmt(ref[label][test])
                cells += [rs, f"**{nm / rm:.3f}**"]
            print(f"| {test} | {ns} | " + " | ".join(cells) + " |")
        peak = ", ".join(f"{k} {v / 1024:.0f} MiB" for k, v in rss.items())
        print()
        print(f"Peak RSS: {peak}.")
        print()


if __name__ == "__main__":
    main()
