#!/usr/bin/env bash
# Reproduces every figure in RELIABILITY.md: runs the fault harness (crates/cli/tests/fault)
# with the heavier, longer profile, one case at a time, and writes its Markdown table to
# target/reliability.md (or the path given as $1). Needs root for the network namespaces and
# nftables for packet loss (scripts/setup.sh installs it). Cases that fail are still reported
# (their row says why); the script exits non-zero if any failed.
#   scripts/reliability.sh [out.md] [nextest filter...]
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-target/reliability.md}"
shift || true
export NOVA_HOME="${NOVA_HOME:-$HOME/.local/share/nova}"
export NOVA_FAULT_PROFILE="${NOVA_FAULT_PROFILE:-full}"
rows="$(mktemp)"
trap 'rm -f "$rows"' EXIT
export NOVA_FAULT_REPORT="$rows"

status=0
cargo nextest run --locked -p nova --test fault --profile ci --no-fail-fast \
  --test-threads 1 "$@" || status=$?

mkdir -p "$(dirname "$out")"
{
  echo "Measured $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, commit $(git rev-parse --short HEAD), profile $NOVA_FAULT_PROFILE."
  echo
  echo "| case | fault | sent | completed | clean errors | hung | lost | p99 ms, no fault → fault | gateway RSS MiB, before → after | verdict | notes |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  cat "$rows"
} > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out" >&2
exit "$status"
