#!/usr/bin/env bash
# JSON answers against llama.cpp's llama-server: the same chat requests in free text, JSON mode
# and with a JSON schema, interleaved, same GGUF and threads; prints a Markdown report for
# BENCHMARKS.md (tok/s, the ratio, how many answers parse and match the schema).
# Settings: THREADS (2), CTX (2048), TOKENS (128 per answer at most), ROUNDS (2),
# MODELS (smollm2-135m,gemma3-270m), NOVA (a built nova binary; default: build target/release/nova).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${NOVA:-}" ]]; then
  scripts/setup.sh
  cargo build --release --locked -p nova
  NOVA=target/release/nova
  "$NOVA" model pull --all >&2
fi
tools="$(scripts/build_llama_tools.sh)"
models_dir="${NOVA_HOME:-$HOME/.local/share/nova}/models"
declare -A files=([smollm2-135m]=SmolLM2-135M-Instruct.Q4_1.gguf [gemma3-270m]=gemma-3-270m-q4_k_m.gguf)
pairs=()
IFS=, read -r -a names <<<"${MODELS:-smollm2-135m,gemma3-270m}"
for m in "${names[@]}"; do
  [[ -n "${files[$m]:-}" ]] || { echo "unknown model $m (smollm2-135m or gemma3-270m)" >&2; exit 2; }
  pairs+=("$m=$models_dir/${files[$m]}")
done

exec python3 scripts/bench_json.py --nova "$NOVA" --server "$tools/llama-server" \
  --threads "${THREADS:-2}" --ctx "${CTX:-2048}" --tokens "${TOKENS:-128}" \
  --rounds "${ROUNDS:-2}" --models "$(IFS=,; echo "${pairs[*]}")"
