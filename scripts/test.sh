#!/usr/bin/env bash
# Runs every check and test on a fresh machine: installs build prerequisites, pulls both
# catalog models into the data dir (once; later runs only verify), builds llama.cpp's own
# llama-server as the real upstream for the openai_http tests (once) and the official openai and
# ollama Python clients in venvs (once each), then formats, lints and tests the workspace with one
# debug build, and checks every dependency's licence (cargo-deny, installed into the data dir once).
set -euo pipefail
cd "$(dirname "$0")/.."

# Where the time goes, printed last (CI shows the end of the output): one line per stage.
timings=""
stage_start=$SECONDS
stage_name="setup"
stage() {
  timings+="$(printf '%-40s %5d s' "$stage_name" "$((SECONDS - stage_start))")"$'\n'
  stage_name="$1"
  stage_start=$SECONDS
  echo "== $1" >&2
}
report() {
  local rc=$?
  timings+="$(printf '%-40s %5d s' "$stage_name" "$((SECONDS - stage_start))")"$'\n'
  printf '\n== time per stage (exit %d, %d s in all)\n%s' "$rc" "$SECONDS" "$timings" >&2
}
trap report EXIT

scripts/setup.sh
export NOVA_HOME="${NOVA_HOME:-$HOME/.local/share/nova}"

stage "build"
cargo build --locked --workspace --all-targets

stage "models"
target/debug/nova model pull --all

stage "llama.cpp reference tools"
tools="$(scripts/build_llama_tools.sh)"
export NOVA_LLAMA_SERVER="$tools/llama-server"

stage "openai Python client"
venv="$NOVA_HOME/tools/openai-venv"
if ! "$venv/bin/python" -c 'import openai' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "openai==${OPENAI_PY_VERSION:-3.54.0}"
fi
export NOVA_OPENAI_PYTHON="$venv/bin/python"

stage "ollama Python client"
# Its own venv, so either client's pin can move without the other's reinstall.
venv="$NOVA_HOME/tools/ollama-venv"
ollama_py="${OLLAMA_PY_VERSION:-0.6.3}"
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('ollama') != '$ollama_py')" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "ollama==$ollama_py"
fi
export NOVA_OLLAMA_PYTHON="$venv/bin/python"

stage "playwright-core"
# npm ci replaces node_modules every time; run it only when the lockfile changed since.
if ! cmp -s tests/web/package-lock.json tests/web/node_modules/.nova-lock; then
  npm ci --prefix tests/web --no-audit --no-fund
  cp tests/web/package-lock.json tests/web/node_modules/.nova-lock
fi

stage "fmt, shellcheck"
cargo fmt --all -- --check
shellcheck -x scripts/*.sh scripts/lib/*.sh .ci/run
stage "licences (cargo-deny)"
scripts/check_licenses.sh
stage "python checks"
python3 -m unittest discover -s evals/docqa -p 'test_*.py'
python3 -m unittest discover -s scripts -p 'test_*.py'
stage "clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings

stage "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --workspace --profile ci
else
  cargo test --locked --workspace
fi
