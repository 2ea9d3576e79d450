#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ and runs each for a bounded time (FUZZ_SECONDS, default
# 20) from its committed seed corpus (fuzz/corpus/<target>/, never modified: new inputs go to a
# scratch directory). Fails if any target crashes, hangs or leaks; the input that did it is saved
# under fuzz/artifacts/<target>/ and the libFuzzer output names it. Installs cargo-fuzz (from
# crates.io) only when it is missing; needs the nightly toolchain (rustup toolchain install nightly).
#   scripts/fuzz.sh                 all targets, 20 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh sse p2p_frame
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-20}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"

if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  echo "error: the $toolchain toolchain is missing; install it with: rustup toolchain install $toolchain" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +"$toolchain" fuzz list --fuzz-dir fuzz)
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

echo "== building ${#targets[@]} fuzz targets" >&2
start=$SECONDS
# One cargo invocation builds every target over the same instrumented dependencies.
cargo +"$toolchain" fuzz build --fuzz-dir fuzz
echo "== built in $((SECONDS - start)) s" >&2

failed=()
for target in "${targets[@]}"; do
  echo "== fuzzing $target for $seconds s" >&2
  mkdir -p "$scratch/$target"
  # The first corpus directory receives new inputs; the committed seeds are only read.
  if ! cargo +"$toolchain" fuzz run --fuzz-dir fuzz "$target" \
    "$scratch/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
    failed+=("$target")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "error: fuzz targets failed: ${failed[*]} (inputs under fuzz/artifacts/; reproduce with: cargo +$toolchain fuzz run --fuzz-dir fuzz <target> <input>)" >&2
  exit 1
fi
echo "fuzzing: ${#targets[@]} passed, 0 failed" >&2
