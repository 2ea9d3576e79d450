# Included into every llama.cpp/ggml CMake project nova builds (CMAKE_PROJECT_INCLUDE, set in
# .cargo/config.toml and scripts/build_llama_tools.sh).
#
# With GGML_NATIVE, ggml compiles with -march=native, and on CPUs with Intel AMX (Sapphire
# Rapids and later) that turns on ggml's AMX matrix-multiply path. On this project's x86-64 test
# machines that path crashed every prompt (SIGSEGV in ggml_backend_amx_mul_mat) while the
# 16-token warm-up still passed. Explicit -mno-amx-* flags win over -march=native in GCC and
# Clang, so the rest of the native ISA (AVX-512, VNNI) stays on. Other architectures (a phone's
# aarch64) do not know these flags and are left alone.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  add_compile_options(-mno-amx-tile -mno-amx-int8 -mno-amx-bf16)
endif()
