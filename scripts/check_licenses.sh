#!/usr/bin/env bash
# Checks that every crate nova builds, and every crate of the fuzz targets, carries a licence
# that deny.toml allows. Installs the pinned cargo-deny from crates.io into the data dir once (CI
# starts from a clean machine with only crates.io reachable); later runs reuse it.
#   scripts/check_licenses.sh
#   CARGO_DENY_VERSION=0.20.2 scripts/check_licenses.sh
set -euo pipefail
cd "$(dirname "$0")/.."

version="${CARGO_DENY_VERSION:-0.20.2}"
home="${NOVA_HOME:-$HOME/.local/share/nova}"
root="$home/tools/cargo-deny-$version"
deny="$root/bin/cargo-deny"

if ! "$deny" --version 2>/dev/null | grep -qx "cargo-deny $version"; then
  echo "installing cargo-deny $version into $root (once)" >&2
  mkdir -p "$home/tools"
  # Built in a scratch root and moved into place whole, so an interrupted install is never
  # mistaken for a finished one.
  work="$(mktemp -d -p "$home/tools")"
  trap 'rm -rf "$work"' EXIT
  # A debug build: it compiles in well under half the CPU time of cargo-deny's release profile
  # (fat LTO, one codegen unit), and the licence check still takes seconds.
  cargo install --locked --debug --quiet --root "$work/out" "cargo-deny@$version"
  rm -rf "$root"
  mv "$work/out" "$root"
fi

# --locked: the lockfiles are what ships, so cargo metadata must not re-resolve them.
# -D warnings: an allow-list entry no crate needs any more fails too, so the list stays exact.
# Each workspace lacks some crate another has an exception for (the main one has no libFuzzer,
# the fuzz targets no rustyline), so unused exceptions are not errors; unused allow-list entries are.
"$deny" --locked --config deny.toml check -D warnings -A license-exception-not-encountered licenses
"$deny" --locked --manifest-path fuzz/Cargo.toml --config deny.toml check -D warnings -A license-exception-not-encountered licenses
