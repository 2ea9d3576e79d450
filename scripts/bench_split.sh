#!/usr/bin/env bash
# Benchmarks a model split across devices: nova's pool over the swarm against llama.cpp's own
# ggml-rpc split over TCP, in one run, with DELAYS ms added each way on every shard link by
# scripts/delay_proxy.py (this kernel has no netem). Prints a Markdown report for BENCHMARKS.md.
# Settings: DELAYS (0,2,10), SHARDS (0,1,2,3), TOKENS (64), RUNS (3), THREADS (2),
# NOVA (a built nova binary; default: build target/release/nova).
set -euo pipefail
cd "$(dirname "$0")/.."

home="${NOVA_HOME:-$HOME/.local/share/nova}"
if [[ -z "${NOVA:-}" ]]; then
  scripts/setup.sh
  cargo build --release --locked -p nova
  NOVA=target/release/nova
  "$NOVA" model pull --all >&2
fi

exec python3 scripts/bench_split.py --nova "$NOVA" --models-dir "$home/models" \
  --delays "${DELAYS:-0,2,10}" --shards "${SHARDS:-0,1,2,3}" --tokens "${TOKENS:-64}" \
  --runs "${RUNS:-3}" --threads "${THREADS:-2}"
