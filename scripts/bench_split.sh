#!/usr/bin/env bash
# Benchmarks a model split across devices: nova's pool over the swarm against llama.cpp's own
# RPC split (ggml-rpc-server shards, llama-bench --rpc head, built by
# scripts/build_llama_tools.sh --rpc), in one run, with DELAYS ms added each way on every shard
# link by scripts/delay_proxy.py (this kernel has no netem). Run as root, the head and each
# shard get a network namespace of their own joined by veth pairs (deleted at exit); otherwise
# everything runs on loopback. Prints a Markdown report for BENCHMARKS.md, one per model.
# Settings: MODELS (smollm2-135m,gemma3-270m), DELAYS (0,2,10), SHARDS (0,1,2,3), TOKENS (64),
# RUNS (3), THREADS (2), NOVA (a built nova binary; default: build target/release/nova).
set -euo pipefail
cd "$(dirname "$0")/.."

home="${NOVA_HOME:-$HOME/.local/share/nova}"
if [[ -z "${NOVA:-}" ]]; then
  scripts/setup.sh
  cargo build --release --locked -p nova
  NOVA=target/release/nova
  "$NOVA" model pull --all >&2
fi
llama_bin="$(scripts/build_llama_tools.sh --rpc)"

IFS=, read -r -a models <<<"${MODELS:-smollm2-135m,gemma3-270m}"
for model in "${models[@]}"; do
  python3 scripts/bench_split.py --nova "$NOVA" --llama-bin "$llama_bin" \
    --models-dir "$home/models" --model "$model" --delays "${DELAYS:-0,2,10}" \
    --shards "${SHARDS:-0,1,2,3}" --tokens "${TOKENS:-64}" --runs "${RUNS:-3}" \
    --threads "${THREADS:-2}"
  echo
done
