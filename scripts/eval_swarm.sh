#!/usr/bin/env bash
# Reproduces BENCHMARKS.md's answer-quality figures: starts a gateway and three workers of the
# default model on 127.0.0.1 (each in its own scratch data dir, reading the model from the
# shared one), runs `nova eval` once per configuration (each writes its own JSON, so a long run
# keeps what it finished), prints the tables and stops the nodes.
#   scripts/eval_swarm.sh [out_dir] [configs...]
#   scripts/eval_swarm.sh target/eval greedy vote:3      # a subset
#   EVAL_LIMIT=50 scripts/eval_swarm.sh                  # 50 items (10 per kind)
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-target/eval}"
shift || true
configs=("$@")
if [ "${#configs[@]}" -eq 0 ]; then
  configs=(greedy sampled best_of_n:3 vote:3 council:3 auto vote:5 vote:9)
fi
home="${NOVA_HOME:-$HOME/.local/share/nova}"
nova="${NOVA_BIN:-target/debug/nova}"
threads="${EVAL_THREADS:-1}"
[ -x "$nova" ] || { echo "error: $nova not built; run: cargo build -p nova" >&2; exit 1; }
model="$("$nova" --data-dir "$home" model path smollm2-135m 2>/dev/null || true)"
if [ -z "$model" ] || [ ! -f "$model" ]; then
  model="$home/models/SmolLM2-135M-Instruct.Q4_1.gguf"
fi
[ -f "$model" ] || { echo "error: no model at $model; run: $nova model pull smollm2-135m" >&2; exit 1; }

mkdir -p "$out"
scratch="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT

token="eval-$RANDOM$RANDOM"
secret="eval-secret-$RANDOM$RANDOM$RANDOM"
"$nova" --data-dir "$scratch/gw" serve --bind 127.0.0.1:0 --p2p-listen /ip4/127.0.0.1/tcp/0 \
  --no-local --token "$token" --secret "$secret" >"$scratch/gw.out" 2>"$scratch/gw.err" &
pids+=($!)
for _ in $(seq 100); do
  grep -q '^p2p listening on ' "$scratch/gw.out" 2>/dev/null && break
  sleep 0.2
done
url="$(sed -n 's/^nova gateway listening on \([^ ]*\).*/\1/p' "$scratch/gw.out" | head -1)"
join="$(sed -n 's/^p2p listening on \([^ ]*\).*/\1/p' "$scratch/gw.out" | head -1)"
if [ -z "$url" ] || [ -z "$join" ]; then
  echo "error: the gateway did not start:" >&2
  cat "$scratch/gw.err" >&2
  exit 1
fi

for i in 1 2 3; do
  NOVA_THREADS="$threads" "$nova" --data-dir "$scratch/w$i" worker --join "$join" --secret "$secret" \
    --model "$model" --name "eval-$i" --heartbeat-ms 1000 >"$scratch/w$i.out" 2>"$scratch/w$i.err" &
  pids+=($!)
done
for _ in $(seq 300); do
  ready="$(curl -fsS -H "Authorization: Bearer $token" "$url/v1/swarm" 2>/dev/null | grep -o '"state":"ready"' | wc -l || true)"
  [ "$ready" -ge 3 ] && break
  sleep 0.2
done
[ "${ready:-0}" -ge 3 ] || { echo "error: only ${ready:-0} of 3 workers joined" >&2; exit 1; }
echo "gateway $url, 3 workers ready (threads $threads each); $(nproc) cores" >&2

limit=()
[ -n "${EVAL_LIMIT:-}" ] && limit=(--limit "$EVAL_LIMIT")
for c in "${configs[@]}"; do
  f="$out/${c/:/-}.json"
  echo "== $c" >&2
  "$nova" eval --url "$url" --token "$token" --configs "$c" "${limit[@]}" --out "$f"
done
