#!/usr/bin/env bash
# Builds llama.cpp's own `llama-bench` and `llama-server` from the full llama.cpp tree that PyPI's
# llama-cpp-python source package carries (the copy inside llama-cpp-sys-2 has its tools
# stripped). They are the reference for `nova bench engine` and the real upstream server for
# the openai_http backend's tests. Idempotent: prints the bin directory, building only once.
set -euo pipefail

version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
home="${NOVA_HOME:-$HOME/.local/share/nova}"
dest="$home/tools/llama-cpp-python-$version"

if [ -x "$dest/bin/llama-bench" ] && [ -x "$dest/bin/llama-server" ]; then
  echo "$dest/bin"
  exit 0
fi

for tool in cmake c++ python3; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required (apt-get install cmake g++ python3)" >&2; exit 1; }
done

mkdir -p "$home/tools"
work="$(mktemp -d "$home/tools/.build-XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "fetching llama-cpp-python==$version (source) from PyPI" >&2
python3 -m pip download --quiet --no-deps --no-binary :all: -d "$work" "llama-cpp-python==$version" >&2
tar -xzf "$work/llama_cpp_python-$version.tar.gz" -C "$work"
src="$work/llama_cpp_python-$version/vendor/llama.cpp"

echo "building llama-bench and llama-server (native CPU, Release)" >&2
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$work/build" --target llama-bench llama-server -j "$(nproc)" >&2

mkdir -p "$work/out/bin"
cp "$work/build/bin/llama-bench" "$work/build/bin/llama-server" "$work/out/bin/"
echo "llama-cpp-python $version" >"$work/out/SOURCE"
rm -rf "$dest.tmp"
mv "$work/out" "$dest.tmp"
mv "$dest.tmp" "$dest"
echo "$dest/bin"
