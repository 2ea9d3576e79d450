#!/usr/bin/env bash
# Builds llama.cpp's own tools as references for nova. Idempotent: builds once, then only prints
# the bin directory.
#
#   scripts/build_llama_tools.sh                 llama-bench + llama-server from the full llama.cpp
#                                                tree in PyPI's llama-cpp-python source package
#                                                (the copy in llama-cpp-sys-2 has its tools stripped)
#   scripts/build_llama_tools.sh --engine-tree   llama-bench from that package's tools/llama-bench
#                                                sources, compiled against the very llama.cpp tree
#                                                nova embeds (llama-cpp-sys-2's), so engine
#                                                benchmarks compare like with like
#   scripts/build_llama_tools.sh --rpc           llama.cpp's own RPC server (ggml-rpc-server: the
#                                                tool its README calls rpc-server, renamed in this
#                                                version) and a llama-bench with --rpc, both with
#                                                -DGGML_RPC=ON against that same embedded tree, the
#                                                tools' sources (tools/rpc, tools/llama-bench) taken
#                                                from the source package as for --engine-tree; they
#                                                compile there unchanged (same RPC protocol, 7.0.0)
set -euo pipefail
cd "$(dirname "$0")/.."

version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
home="${NOVA_HOME:-$HOME/.local/share/nova}"
mode="${1:-}"

for tool in cmake c++ python3; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required (apt-get install cmake g++ python3)" >&2; exit 1; }
done

# The same compiler settings as nova's embedded llama.cpp (.cargo/config.toml), AMX off included
# (cmake/no-amx.cmake), so the references compare like with like.
cmake_flags=(-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF
  "-DCMAKE_PROJECT_INCLUDE=$PWD/cmake/no-amx.cmake")

# Unpacks the llama-cpp-python source package into $1; prints its llama.cpp tree.
fetch_sdist() {
  echo "fetching llama-cpp-python==$version (source) from PyPI" >&2
  python3 -m pip download --quiet --no-deps --no-binary :all: -d "$1" "llama-cpp-python==$version" >&2
  tar -xzf "$1/llama_cpp_python-$version.tar.gz" -C "$1"
  echo "$1/llama_cpp_python-$version/vendor/llama.cpp"
}

# Moves a finished $1/out into place at $2 atomically.
install_dir() {
  rm -rf "$2.tmp"
  mv "$1/out" "$2.tmp"
  mv "$2.tmp" "$2"
}

case "$mode" in
  "")
    dest="$home/tools/llama-cpp-python-$version-noamx"
    if [ -x "$dest/bin/llama-bench" ] && [ -x "$dest/bin/llama-server" ]; then
      echo "$dest/bin"
      exit 0
    fi
    mkdir -p "$home/tools"
    work="$(mktemp -d -p "$home/tools")"
    trap 'rm -rf "$work"' EXIT
    src="$(fetch_sdist "$work")"
    echo "building llama-bench and llama-server (native CPU, Release)" >&2
    cmake -S "$src" -B "$work/build" "${cmake_flags[@]}" >&2
    cmake --build "$work/build" --target llama-bench llama-server -j "$(nproc)" >&2
    mkdir -p "$work/out/bin"
    cp "$work/build/bin/llama-bench" "$work/build/bin/llama-server" "$work/out/bin/"
    echo "llama.cpp from llama-cpp-python $version" >"$work/out/SOURCE"
    install_dir "$work" "$dest"
    echo "$dest/bin"
    ;;
  --engine-tree | --rpc)
    meta="$(cargo metadata --format-version 1 --locked)"
    read -r sys_version sys_dir < <(python3 -c '
import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "llama-cpp-sys-2":
        print(p["version"], os.path.dirname(p["manifest_path"]))
        break' <<<"$meta")
    [ -n "${sys_dir:-}" ] || { echo "error: llama-cpp-sys-2 not found in cargo metadata" >&2; exit 1; }
    if [ "$mode" = --rpc ]; then
      dest="$home/tools/llama-cpp-sys-2-$sys_version-rpc-noamx"
      tools=(llama-bench ggml-rpc-server)
      what="llama-bench and ggml-rpc-server"
      extra=(-DGGML_RPC=ON)
    else
      dest="$home/tools/llama-cpp-sys-2-$sys_version-noamx"
      tools=(llama-bench)
      what="llama-bench"
      extra=()
    fi
    built=1
    for t in "${tools[@]}"; do
      [ -x "$dest/bin/$t" ] || built=0
    done
    if [ "$built" = 1 ]; then
      echo "$dest/bin"
      exit 0
    fi
    mkdir -p "$home/tools"
    work="$(mktemp -d -p "$home/tools")"
    trap 'rm -rf "$work"' EXIT
    sdist="$(fetch_sdist "$work")"
    cp -r "$sys_dir/llama.cpp" "$work/tree"
    chmod -R u+w "$work/tree"
    cp "$sdist/tools/llama-bench/"* "$work/tree/tools/llama-bench/"
    echo 'add_subdirectory(llama-bench)' >"$work/tree/tools/CMakeLists.txt"
    if [ "$mode" = --rpc ]; then
      cp "$sdist/tools/rpc/"* "$work/tree/tools/rpc/"
      echo 'add_subdirectory(rpc)' >>"$work/tree/tools/CMakeLists.txt"
    fi
    echo "building $what against llama-cpp-sys-2 $sys_version's llama.cpp (native CPU, Release${extra[*]:+, ${extra[*]}})" >&2
    cmake -S "$work/tree" -B "$work/build" "${cmake_flags[@]}" "${extra[@]}" -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF >&2
    cmake --build "$work/build" --target "${tools[@]}" -j "$(nproc)" >&2
    mkdir -p "$work/out/bin"
    for t in "${tools[@]}"; do
      cp "$work/build/bin/$t" "$work/out/bin/"
    done
    echo "llama.cpp from llama-cpp-sys-2 $sys_version${extra[*]:+ (${extra[*]})}; $what sources from llama-cpp-python $version" >"$work/out/SOURCE"
    install_dir "$work" "$dest"
    echo "$dest/bin"
    ;;
  *)
    echo "usage: $0 [--engine-tree | --rpc]" >&2
    exit 2
    ;;
esac
