#!/usr/bin/env bash
# Reproduces BENCHMARKS.md's document-QA figures (issue 11, federated retrieval):
#  1. generates the corpus (evals/docqa/gen_docqa.py) into OUT_DIR/corpus: one shard per node;
#  2. indexes shard X in worker X's own data dir (`nova rag add`);
#  3. measures the index build on 1,000 generated files: `nova rag add` in a fresh data dir
#     (wall time, DOCQA_BUILD_RUNS runs), the index's size, `nova rag reindex` with nothing changed;
#  4. starts a gateway and 3 workers (as scripts/eval_swarm.sh does), all sharing, and runs
#     `nova eval` on evals/docqa/questions.jsonl with RAG off (rag-off) and on (rag-all);
#  5. restarts the swarm with only worker A sharing and runs it with RAG on (rag-one);
#  6. prints the tables (scripts/docqa_table.py) and writes them to OUT_DIR/summary.md.
# Every answer is greedy (temperature 0) with a fixed seed (DOCQA_SEED, default 0).
#
#   scripts/eval_docqa.sh [OUT_DIR]                 # default target/eval-docqa
#   EVAL_LIMIT=36 scripts/eval_docqa.sh             # 36 items per setup: 6 per kind, 2 per shard and kind
#   DOCQA_SETUPS="rag-all" DOCQA_BULK=0 scripts/eval_docqa.sh   # one setup, no build measurement
#
# Settings: NOVA_BIN (target/debug/nova), NOVA_HOME (where the model is), EVAL_THREADS (1 per
# worker), EVAL_LIMIT, DOCQA_SETUPS ("rag-off rag-all rag-one"), DOCQA_BULK (1000 files; 0
# skips the build measurement), DOCQA_BUILD_RUNS (3), DOCQA_SEED (0), DOCQA_MAX_TOKENS (32),
# DOCQA_RAG_K (passages per question, the gateway's --rag-k; default: the gateway's own).
#
# Writes only under OUT_DIR, and on every run replaces what it wrote there before:
#   corpus/  nodes/{gw,a,b,c}/ (data dirs: keys, logs, each worker's index)  build/  logs/
#   results/<setup>.json (nova eval)  index-build.json  summary.md
#
# DEPENDS ON ISSUE 11 WORK NOT ON MAIN WHEN THIS WAS WRITTEN: `nova rag add DIR`, `nova rag
# reindex`, `--share-knowledge` on `nova worker`, `"rag": true` on /submit, and the index at
# <data dir>/knowledge/index.sqlite (the size measurement also reports the whole knowledge/
# directory, so another index layout is still measured). The script checks for the command and
# the flag first and stops with a clear message when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-target/eval-docqa}"
[ -n "$out" ] || { echo "error: empty output directory" >&2; exit 2; }
mkdir -p "$out"
out="$(cd "$out" && pwd)"
[ "$out" != / ] || { echo "error: refusing / as the output directory" >&2; exit 2; }

home="${NOVA_HOME:-$HOME/.local/share/nova}"
nova="${NOVA_BIN:-target/debug/nova}"
threads="${EVAL_THREADS:-1}"
read -r -a setups <<<"${DOCQA_SETUPS:-rag-off rag-all rag-one}"
bulk="${DOCQA_BULK:-1000}"
build_runs="${DOCQA_BUILD_RUNS:-3}"
seed="${DOCQA_SEED:-0}"
max_tokens="${DOCQA_MAX_TOKENS:-32}"
gw_flags=()
if [ -n "${DOCQA_RAG_K:-}" ]; then gw_flags+=(--rag-k "$DOCQA_RAG_K"); fi
set_file="evals/docqa/questions.jsonl"
gen="evals/docqa/gen_docqa.py"

[ -x "$nova" ] || { echo "error: $nova not built; run: cargo build -p nova" >&2; exit 1; }
nova="$(cd "$(dirname "$nova")" && pwd)/$(basename "$nova")"
# Issue 11: the `rag` command and `--share-knowledge`.
if ! "$nova" rag --help >/dev/null 2>&1; then
  echo "error: $nova has no 'rag' command (issue 11's local index); build a nova that has it" >&2
  exit 1
fi
if ! "$nova" worker --help 2>/dev/null | grep -q -- '--share-knowledge'; then
  echo "error: '$nova worker' has no --share-knowledge flag (issue 11); build a nova that has it" >&2
  exit 1
fi
model="$("$nova" --data-dir "$home" model path smollm2-135m 2>/dev/null || true)"
if [ -z "$model" ] || [ ! -f "$model" ]; then
  model="$home/models/SmolLM2-135M-Instruct.Q4_1.gguf"
fi
[ -f "$model" ] || { echo "error: no model at $model; run: $nova model pull smollm2-135m" >&2; exit 1; }
for s in "${setups[@]}"; do
  case "$s" in rag-off | rag-one | rag-all) ;; *) echo "error: unknown setup '$s' (rag-off, rag-one, rag-all)" >&2; exit 2 ;; esac
done

# The committed question set must be what the generator writes, or the corpus would not
# answer it.
if ! python3 "$gen" questions | cmp -s - "$set_file"; then
  echo "error: $set_file differs from '$gen questions'; regenerate it" >&2
  exit 1
fi

# logged NAME CMD...: runs CMD with its output in logs/NAME.{out,err}; on failure shows the
# end of its stderr and stops.
logged() {
  local name="$1"
  shift
  if ! "$@" >>"$out/logs/$name.out" 2>>"$out/logs/$name.err"; then
    echo "error: $* failed; the end of $out/logs/$name.err:" >&2
    tail -n 20 "$out/logs/$name.err" >&2
    exit 1
  fi
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
# Bytes of the index file (and its write-ahead log), or "null" when there is none.
index_bytes() {
  local k="$1/knowledge" n=0 f
  [ -f "$k/index.sqlite" ] || { echo null; return; }
  for f in "$k/index.sqlite" "$k/index.sqlite-wal"; do
    [ -f "$f" ] && n=$((n + $(stat -c %s "$f")))
  done
  echo "$n"
}
dir_bytes() {
  if [ -d "$1/knowledge" ]; then
    find "$1/knowledge" -type f -printf '%s\n' | awk '{ n += $1 } END { print n + 0 }'
  else
    echo null
  fi
}

# Everything this script wrote last time, and nothing else.
rm -rf "$out/nodes" "$out/build" "$out/logs" "$out/results"
rm -f "$out/index-build.json" "$out/summary.md"
mkdir -p "$out/nodes" "$out/build" "$out/logs" "$out/results"

pids=()
stop_swarm() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap stop_swarm EXIT

echo "== corpus" >&2
python3 "$gen" corpus "$out/corpus"

echo "== index each shard in its worker's data dir" >&2
shard_json=""
for s in a b c; do
  t0="$(now)"
  logged "rag-add-$s" "$nova" --data-dir "$out/nodes/$s" rag add "$out/corpus/shard-$s"
  took="$(since "$t0")"
  files="$(find "$out/corpus/shard-$s" -type f | wc -l)"
  echo "shard-$s: $files files indexed in $took s" >&2
  shard_json+="${shard_json:+, }\"$s\": {\"files\": $files, \"add_s\": $took, \"index_bytes\": $(index_bytes "$out/nodes/$s"), \"knowledge_dir_bytes\": $(dir_bytes "$out/nodes/$s")}"
done

runs_json=""
reindex_json=""
if [ "$bulk" -gt 0 ]; then
  echo "== index build: $bulk files, $build_runs runs" >&2
  python3 "$gen" bulk "$out/build/docs" "$bulk"
  bytes="$(find "$out/build/docs" -type f -printf '%s\n' | awk '{ n += $1 } END { print n + 0 }')"
  for r in $(seq "$build_runs"); do
    d="$out/build/run-$r"
    t0="$(now)"
    logged "build-$r" "$nova" --data-dir "$d" rag add "$out/build/docs"
    took="$(since "$t0")"
    echo "run $r: rag add $took s, index $(index_bytes "$d") bytes" >&2
    runs_json+="${runs_json:+, }{\"add_s\": $took, \"index_bytes\": $(index_bytes "$d"), \"knowledge_dir_bytes\": $(dir_bytes "$d")}"
  done
  for r in $(seq "$build_runs"); do
    t0="$(now)"
    logged reindex "$nova" --data-dir "$out/build/run-1" rag reindex
    took="$(since "$t0")"
    echo "reindex, nothing changed: $took s" >&2
    reindex_json+="${reindex_json:+, }$took"
  done
  cat >"$out/index-build.json" <<EOF
{"files": $bulk, "bytes": $bytes, "runs": [$runs_json], "reindex_s": [$reindex_json], "shards": {$shard_json}}
EOF
fi

token="docqa-$RANDOM$RANDOM"
secret="docqa-secret-$RANDOM$RANDOM$RANDOM"
url=""

# start_swarm NAME SHARING...: a gateway and workers a, b, c; those named share knowledge.
start_swarm() {
  local name="$1" s share ready known logs="$out/logs/$1"
  shift
  mkdir -p "$logs"
  "$nova" --data-dir "$out/nodes/gw" serve --bind 127.0.0.1:0 --p2p-listen /ip4/127.0.0.1/tcp/0 \
    --no-local --token "$token" --secret "$secret" ${gw_flags[@]+"${gw_flags[@]}"} \
    >"$logs/gw.out" 2>"$logs/gw.err" &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q '^p2p listening on ' "$logs/gw.out" 2>/dev/null && break
    sleep 0.2
  done
  url="$(sed -n 's/^nova gateway listening on \([^ ]*\).*/\1/p' "$logs/gw.out" | head -1)"
  local join
  join="$(sed -n 's/^p2p listening on \([^ ]*\).*/\1/p' "$logs/gw.out" | head -1)"
  if [ -z "$url" ] || [ -z "$join" ]; then
    echo "error: the gateway did not start:" >&2
    cat "$logs/gw.err" >&2
    exit 1
  fi
  for s in a b c; do
    share=()
    case " $* " in *" $s "*) share=(--share-knowledge) ;; esac # issue 11's flag
    NOVA_THREADS="$threads" "$nova" --data-dir "$out/nodes/$s" worker --join "$join" \
      --secret "$secret" --model "$model" --name "docqa-$s" --heartbeat-ms 1000 "${share[@]}" \
      >"$logs/$s.out" 2>"$logs/$s.err" &
    pids+=($!)
  done
  ready=0
  for _ in $(seq 300); do
    ready="$(curl -fsS -H "Authorization: Bearer $token" "$url/v1/swarm" 2>/dev/null | grep -o '"state":"ready"' | wc -l || true)"
    [ "$ready" -ge 3 ] && break
    sleep 0.2
  done
  [ "$ready" -ge 3 ] || { echo "error: only $ready of 3 workers joined ($name)" >&2; exit 1; }
  # A sharing worker reports what it shares in its heartbeat; wait until every one has.
  known=0
  for _ in $(seq 100); do
    known="$(curl -fsS -H "Authorization: Bearer $token" "$url/v1/swarm" 2>/dev/null | grep -o '"knowledge":{' | wc -l || true)"
    [ "$known" -ge "$#" ] && break
    sleep 0.2
  done
  [ "$known" -ge "$#" ] || echo "warning: only $known of $# sharing workers report knowledge ($name)" >&2
  echo "$name: gateway $url, 3 workers ready (threads $threads each), sharing: $*; $(nproc) cores" >&2
}

# run_eval SETUP [--rag]
run_eval() {
  local setup="$1" limit=()
  shift
  [ -n "${EVAL_LIMIT:-}" ] && limit=(--limit "$EVAL_LIMIT")
  echo "== $setup" >&2
  # nova eval fails when no item was answered; it has written its results by then, and the
  # other setups are still worth running.
  "$nova" eval --url "$url" --token "$token" --set "$set_file" --configs greedy \
    --seed "$seed" --max-tokens "$max_tokens" "${limit[@]}" "$@" --out "$out/results/$setup.json" ||
    echo "warning: nova eval answered nothing in $setup; see $out/results/$setup.json" >&2
}

wants() { case " ${setups[*]} " in *" $1 "*) return 0 ;; esac; return 1; }

if wants rag-off || wants rag-all; then
  # With RAG off nothing is retrieved, so sharing does not matter; one swarm serves both.
  start_swarm all a b c
  if wants rag-off; then run_eval rag-off; fi
  if wants rag-all; then run_eval rag-all --rag; fi # issue 11's "rag": true
  stop_swarm
fi
if wants rag-one; then
  start_swarm one a
  run_eval rag-one --rag
  stop_swarm
fi

python3 scripts/docqa_table.py "$out" | tee "$out/summary.md"
echo "results in $out (summary.md, results/, index-build.json)" >&2
