#!/usr/bin/env bash
# Benchmarks the embedded engine against llama.cpp's own llama-bench, same GGUF files, threads
# and machine, interleaved in one run, and prints a Markdown report for BENCHMARKS.md.
# References: llama-bench from llama-cpp-python's llama.cpp tree (scripts/build_llama_tools.sh),
# and llama-bench grafted onto the exact llama.cpp tree nova embeds (llama-cpp-sys-2's), so
# that a gap can be told apart from a llama.cpp version difference.
# Settings: THREADS (2), RUNS (5), ROUNDS (2), MODELS (smollm2-135m,gemma3-270m).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release --locked -p nova
nova=target/release/nova
"$nova" model pull --all >&2
tools="$(scripts/build_llama_tools.sh)"
same="$(scripts/build_llama_tools.sh --engine-tree)"

exec python3 scripts/bench_engine.py --nova "$nova" \
  --ref "llama-bench (engine's tree)=$same/llama-bench" \
  --ref "llama-bench (llama-cpp-python tree)=$tools/llama-bench" \
  --threads "${THREADS:-2}" --runs "${RUNS:-5}" --rounds "${ROUNDS:-2}" \
  --models "${MODELS:-smollm2-135m,gemma3-270m}"
