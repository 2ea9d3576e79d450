#!/usr/bin/env bash
# best_of_n on one device (issue 12, BENCHMARKS.md): the time of one answer (race, fanout 1)
# against best-of-4 (fanout 4) on a single `nova serve` whose engine generates PARALLEL requests
# at once, alternating request by request so both see the same machine. Streamed chat requests
# of TOKENS tokens (temperature 0.7, EOS ignored), one at a time. Prints one Markdown row per
# model and --parallel: median latency of each and their ratio.
# Settings: NOVA_BIN (target/release/nova), MODELS (smollm2-135m,gemma3-270m), PARALLEL (4,1),
# REQUESTS (8 of each), TOKENS (64), THREADS (2).
set -euo pipefail
cd "$(dirname "$0")/.."

nova="${NOVA_BIN:-target/release/nova}"
threads="${THREADS:-2}"
requests="${REQUESTS:-8}"
tokens="${TOKENS:-64}"
tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

wait_line() {
  for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timeout waiting for '$2' in $1" >&2
  exit 1
}

# One request's latency in ms (p50 of a level of one request).
once() {
  "$nova" bench swarm --url "$1" --token t --concurrency 1 --requests 1 --max-tokens "$tokens" \
    --strategy "$2" --fanout "$3" --json |
    python3 -c 'import json,sys; r=json.loads(sys.stdin.readline()); assert r["errors"]==0, r; print(r["latency_p50_ms"])'
}

echo "| model | --parallel | one answer p50 ms | best-of-4 p50 ms | ratio |"
echo "| --- | --- | --- | --- | --- |"
IFS=, read -ra models <<<"${MODELS:-smollm2-135m,gemma3-270m}"
IFS=, read -ra levels <<<"${PARALLEL:-4,1}"
for model in "${models[@]}"; do
  for parallel in "${levels[@]}"; do
    dir="$tmp/$model-$parallel"
    "$nova" --data-dir "$dir" serve --bind 127.0.0.1:0 --p2p-listen /ip4/127.0.0.1/tcp/0 \
      --token t --model "$model" --threads "$threads" --parallel "$parallel" >"$dir.out" 2>/dev/null &
    pids+=($!)
    wait_line "$dir.out" '^add a device'
    url="$(sed -n 's/^nova gateway listening on //p' "$dir.out")"
    once "$url" race 1 >/dev/null # warm-up
    one=() four=()
    for _ in $(seq "$requests"); do
      one+=("$(once "$url" race 1)")
      four+=("$(once "$url" best_of_n 4)")
    done
    kill "${pids[-1]}"
    python3 - "$model" "$parallel" "${one[*]}" "${four[*]}" <<'EOF'
import statistics, sys
model, parallel, one, four = sys.argv[1:]
a = statistics.median(float(x) for x in one.split())
b = statistics.median(float(x) for x in four.split())
print(f"| {model} | {parallel} | {a:.0f} | {b:.0f} | **{b / a:.2f}** |")
EOF
  done
done
