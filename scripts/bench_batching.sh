#!/usr/bin/env bash
# Benchmarks continuous batching against llama.cpp's llama-server -np C: same GGUF, threads,
# context per sequence and prompts, interleaved in one run; prints a Markdown report for
# BENCHMARKS.md (aggregate tok/s, the ratio, TTFT p50/p95 per stream).
# Settings: THREADS (2), CTX (2048 per sequence), CONCURRENCY (1,4,8,16), TOKENS (64),
# RUNS (3 timed rounds per level), ROUNDS (2 interleaved), MODELS (smollm2-135m,gemma3-270m),
# NOVA (a built nova binary; default: build target/release/nova).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${NOVA:-}" ]]; then
  scripts/setup.sh
  cargo build --release --locked -p nova
  NOVA=target/release/nova
  "$NOVA" model pull --all >&2
fi
tools="$(scripts/build_llama_tools.sh)"

exec python3 scripts/bench_batching.py --nova "$NOVA" --server "$tools/llama-server" \
  --threads "${THREADS:-2}" --ctx "${CTX:-2048}" --concurrency "${CONCURRENCY:-1,4,8,16}" \
  --tokens "${TOKENS:-64}" --runs "${RUNS:-3}" --rounds "${ROUNDS:-2}" \
  --models "${MODELS:-smollm2-135m,gemma3-270m}"
