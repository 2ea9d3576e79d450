#!/usr/bin/env bash
# The main job on a fresh machine: install build prerequisites, build nova (release), pull the
# default model if it is not cached, and ask it a sample question. Extra arguments are passed
# to `nova ask` (e.g. --model gemma3-270m --raw "Once upon a time").
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release --locked -p nova
if [ "$#" -eq 0 ]; then
  set -- --temperature 0 --stats "What is the capital of France?"
fi
exec target/release/nova ask "$@"
