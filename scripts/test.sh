#!/usr/bin/env bash
# Runs every check and test on a fresh machine: installs build prerequisites, pulls both
# catalog models into the data dir (once; later runs only verify), builds llama.cpp's own
# llama-server as the real upstream for the openai_http tests (once) and the official openai
# Python client in a venv (once), then formats, lints and tests the workspace with one debug build.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
export NOVA_HOME="${NOVA_HOME:-$HOME/.local/share/nova}"

echo "== build" >&2
cargo build --locked --workspace --all-targets

echo "== models" >&2
target/debug/nova model pull --all

echo "== llama.cpp reference tools" >&2
tools="$(scripts/build_llama_tools.sh)"
export NOVA_LLAMA_SERVER="$tools/llama-server"

echo "== the official openai Python client (for the API compatibility test)" >&2
venv="$NOVA_HOME/tools/openai-venv"
if ! "$venv/bin/python" -c 'import openai' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "openai==${OPENAI_PY_VERSION:-3.54.0}"
fi
export NOVA_OPENAI_PYTHON="$venv/bin/python"

echo "== playwright-core for the dashboard's browser test" >&2
# npm ci replaces node_modules every time; run it only when the lockfile changed since.
if ! cmp -s tests/web/package-lock.json tests/web/node_modules/.nova-lock; then
  npm ci --prefix tests/web --no-audit --no-fund
  cp tests/web/package-lock.json tests/web/node_modules/.nova-lock
fi

echo "== fmt, clippy, shellcheck" >&2
cargo fmt --all -- --check
shellcheck -x scripts/*.sh scripts/lib/*.sh .ci/run
cargo clippy --locked --workspace --all-targets -- -D warnings

echo "== tests" >&2
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --workspace --profile ci
else
  cargo test --locked --workspace
fi
