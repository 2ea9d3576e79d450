#!/usr/bin/env bash
# Boots a swarm on this machine — a gateway with its own engine plus one more worker process,
# all on 127.0.0.1 with a temporary data dir — sends a prompt through it, prints the answer and
# who served it, and cleans up. With KEEP=1 the swarm stays up until Ctrl-C.
# Needs a built nova (NOVA_BIN, default target/release/nova) and the default model pulled.
set -euo pipefail
cd "$(dirname "$0")/.."

nova="${NOVA_BIN:-target/release/nova}"
[ -x "$nova" ] || { echo "error: $nova not found; build it first (cargo build --release -p nova)" >&2; exit 1; }
prompt="${1:-What is the capital of France?}"
models_home="${NOVA_HOME:-$HOME/.local/share/nova}"
"$nova" --data-dir "$models_home" model pull >&2

run_dir="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$run_dir"
}
trap cleanup EXIT INT TERM

# Both nodes read the model from the shared cache; their keys, secrets and db stay in run_dir.
for d in gateway worker; do
  mkdir -p "$run_dir/$d/models"
  ln -s "$models_home/models/SmolLM2-135M-Instruct.Q4_1.gguf" "$run_dir/$d/models/"
done
threads=$(( $(nproc) > 1 ? $(nproc) / 2 : 1 ))
token="smoke-$RANDOM$RANDOM"

"$nova" --data-dir "$run_dir/gateway" serve --bind 127.0.0.1:0 --p2p-listen /ip4/127.0.0.1/tcp/0 \
  --token "$token" --threads "$threads" --no-pull >"$run_dir/gateway.out" 2>"$run_dir/gateway.err" &
pids+=($!)
for _ in $(seq 100); do grep -q '^add a device with' "$run_dir/gateway.out" 2>/dev/null && break; sleep 0.2; done
url="$(sed -n 's/^nova gateway listening on //p' "$run_dir/gateway.out")"
join_cmd="$(sed -n 's/^add a device with: //p' "$run_dir/gateway.out")"
if [ -z "$url" ] || [ -z "$join_cmd" ]; then
  echo "error: the gateway did not start:" >&2
  cat "$run_dir/gateway.err" >&2
  exit 1
fi
echo "gateway: $url" >&2

# shellcheck disable=SC2086 # the printed join command is split into its words on purpose
"$nova" --data-dir "$run_dir/worker" ${join_cmd#nova } --threads "$threads" --no-pull \
  --heartbeat-ms 1000 >"$run_dir/worker.out" 2>"$run_dir/worker.err" &
pids+=($!)

auth=(-H "Authorization: Bearer $token")
for _ in $(seq 150); do
  n=$(curl -s "${auth[@]}" "$url/v1/swarm" | python3 -c 'import json,sys; print(sum(w["state"]=="ready" for w in json.load(sys.stdin)["workers"]))' 2>/dev/null || echo 0)
  [ "$n" -ge 2 ] && break
  sleep 0.2
done
echo "workers ready: $n" >&2

body=$(python3 -c 'import json,sys; print(json.dumps({"prompt": sys.argv[1], "fanout": 2, "strategy": "race", "params": {"temperature": 0, "max_tokens": 64}}))' "$prompt")
curl -s "${auth[@]}" -H 'content-type: application/json' "$url/submit" -d "$body" | python3 -c '
import json, sys
r = json.load(sys.stdin)
if "error" in r:
    sys.exit("error: " + r["error"]["message"])
t = r["trace"]
print(r["text"])
who = ", ".join("%s: %s" % (a["worker"][-8:], a["outcome"]) for a in t["attempts"])
print("[winner %s in %.0f ms; first token %.0f ms; %s]" % (t["winner"][-8:], t["latency_ms"], t["ttft_ms"] or 0, who), file=sys.stderr)
'

if [ "${KEEP:-0}" = 1 ]; then
  echo "swarm running: $url (token $token). Ctrl-C stops it." >&2
  wait
fi
