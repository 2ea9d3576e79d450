#!/usr/bin/env bash
# Gateway overhead (BENCHMARKS.md): the same streamed requests, at concurrency 1, to
#  (direct)  a gateway whose own engine answers (HTTP + engine, no network hop), and
#  (swarm)   a gateway with no engine and one `nova worker` (HTTP + libp2p task stream + engine),
# alternating ROUNDS times, same model and threads. Prints `nova bench swarm` tables.
set -euo pipefail
cd "$(dirname "$0")/.."

nova="${NOVA_BIN:-target/release/nova}"
rounds="${ROUNDS:-2}"
threads="${THREADS:-2}"
model="${NOVA_HOME:-$HOME/.local/share/nova}/models/SmolLM2-135M-Instruct.Q4_1.gguf"
tmp="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

wait_line() { for _ in $(seq 300); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "timeout: $2" >&2; exit 1; }

bench() { "$nova" bench swarm --url "$1" --token t --concurrency 1 --requests "${REQUESTS:-12}" --max-tokens 64; }

for r in $(seq "$rounds"); do
  "$nova" --data-dir "$tmp/d$r" serve --bind 127.0.0.1:0 --p2p-listen /ip4/127.0.0.1/tcp/0 --token t \
    --model "$model" --threads "$threads" >"$tmp/d$r.out" 2>/dev/null &
  pids+=($!)
  wait_line "$tmp/d$r.out" '^add a device'
  echo "== round $r: direct (gateway's own engine)"
  bench "$(sed -n 's/^nova gateway listening on //p' "$tmp/d$r.out")"
  kill "${pids[-1]}"

  "$nova" --data-dir "$tmp/g$r" serve --bind 127.0.0.1:0 --p2p-listen /ip4/127.0.0.1/tcp/0 --token t \
    --no-local --secret s >"$tmp/g$r.out" 2>/dev/null &
  pids+=($!)
  wait_line "$tmp/g$r.out" '^add a device'
  join="$(sed -n 's/^p2p listening on //p' "$tmp/g$r.out")"
  "$nova" --data-dir "$tmp/w$r" worker --join "$join" --secret s --model "$model" --threads "$threads" \
    --heartbeat-ms 500 >"$tmp/w$r.out" 2>/dev/null &
  pids+=($!)
  url="$(sed -n 's/^nova gateway listening on //p' "$tmp/g$r.out")"
  for _ in $(seq 100); do
    curl -s -H 'Authorization: Bearer t' "$url/v1/swarm" | grep -q '"state":"ready"' && break
    sleep 0.1
  done
  echo "== round $r: through the gateway to one remote worker"
  bench "$url"
  kill "${pids[-1]}" "${pids[-2]}"
done
