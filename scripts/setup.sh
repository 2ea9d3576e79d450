#!/usr/bin/env bash
# Installs what building nova needs on Debian/Ubuntu (cmake and clang for llama.cpp and its
# bindings, pip for model wheels). Idempotent: installs only what is missing, and says what to
# run instead when it cannot install (not root, not apt). Never edits shell profiles.
set -euo pipefail

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v clang >/dev/null || need+=(clang)
command -v c++ >/dev/null || need+=(g++)
# bindgen needs libclang; its package name carries the version, so ask the linker cache.
ldconfig -p 2>/dev/null | grep -q 'libclang' || need+=(libclang-dev)
command -v python3 >/dev/null || need+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
python3 -m venv --help >/dev/null 2>&1 || need+=(python3-venv)
command -v shellcheck >/dev/null || need+=(shellcheck)
# The dashboard's browser test: Debian's Chromium, driven by playwright-core under node.
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
[ -x /usr/bin/chromium ] || need+=(chromium)

if [ "${#need[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "error: missing ${need[*]}; install them with your package manager (Termux: pkg install rust cmake clang python)" >&2
    exit 1
  fi
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "error: missing ${need[*]}; run as root: apt-get install -y ${need[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "error: cargo not found; install Rust from your package manager or rustup" >&2; exit 1; }
