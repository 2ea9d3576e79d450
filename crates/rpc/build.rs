//! Builds llama.cpp's RPC backend (ggml-rpc) from the very llama.cpp tree llama-cpp-sys-2 built,
//! with a few small changes nova needs, and links it into nova.
//!
//! Why here and not with `GGML_RPC=ON` in llama-cpp-sys-2's CMake build: stock ggml-rpc can only
//! listen on and dial TCP ports, and nova's rule is that a shard is reachable only through the
//! swarm's authenticated transport. The changes, each applied by replacing a text anchor that must
//! occur exactly once (a llama.cpp bump that moves one fails the build here, loudly):
//!
//! 1. `socket_t::from_fd`: wrap an already-connected socket (one end of a socketpair).
//! 2. `nova_rpc_serve_fd`: serve one client session on such a socket, then return. Stock code only
//!    has `ggml_backend_rpc_start_server`, which binds a TCP port and never returns.
//! 3. `nova_rpc_set_client_hooks`: the client asks nova for a connected socket instead of dialling
//!    `host:port`, and may ask nova what memory a device reports (that is how layers are
//!    proportioned across several shards: llama-cpp-2 does not expose `tensor_split`).
//! 4. The server refuses graph nodes with custom ops, whose parameters carry a function pointer
//!    from the wire (ggml-org/llama.cpp#25289), and ops past the end of the op enum.
//! 5. The server packs the weights its MUL_MATs read for the CPU's kernels, in place, as the
//!    head's CPU packs its own layers (`cpp/repack.inc`), so a split model computes as a whole one.
//!
//! With ggml-rpc off in llama-cpp-sys-2 there is exactly one copy of these symbols in the program.

use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    let cmake_dir = env::var("DEP_LLAMA_GGML_CMAKE_DIR")
        .expect("llama-cpp-sys-2 exports DEP_LLAMA_GGML_CMAKE_DIR (its out/lib/cmake)");
    let llama_src = llama_source(Path::new(&cmake_dir));
    let rpc_src = llama_src.join("ggml/src/ggml-rpc");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let patched = out.join("ggml-rpc");
    fs::create_dir_all(&patched).expect("create the patched source dir");

    let header = patch(&rpc_src.join("transport.h"), TRANSPORT_H);
    let transport = patch(&rpc_src.join("transport.cpp"), TRANSPORT_CPP);
    let rpc = patch(&rpc_src.join("ggml-rpc.cpp"), GGML_RPC_CPP);
    write_if_changed(&patched.join("transport.h"), &header);
    write_if_changed(&patched.join("transport.cpp"), &transport);
    write_if_changed(&patched.join("ggml-rpc.cpp"), &rpc);

    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .warnings(false)
        // The patched transport.h sits next to the patched sources and wins over the original.
        .include(&patched)
        .include(llama_src.join("ggml/include"))
        .include(llama_src.join("ggml/src"))
        .file(patched.join("ggml-rpc.cpp"))
        .file(patched.join("transport.cpp"))
        .compile("nova_ggml_rpc");

    for f in ["transport.h", "transport.cpp", "ggml-rpc.cpp"] {
        println!("cargo:rerun-if-changed={}", rpc_src.join(f).display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cpp/repack.inc");
    println!("cargo:rerun-if-env-changed=DEP_LLAMA_GGML_CMAKE_DIR");
}

/// The llama.cpp source tree llama-cpp-sys-2 configured, read from its CMake cache, so the
/// headers and the compiled ggml come from one tree.
fn llama_source(cmake_dir: &Path) -> PathBuf {
    let out = cmake_dir
        .parent()
        .and_then(Path::parent)
        .expect("DEP_LLAMA_GGML_CMAKE_DIR is <out>/lib/cmake");
    let cache = out.join("build/CMakeCache.txt");
    let text =
        fs::read_to_string(&cache).unwrap_or_else(|e| panic!("read {}: {e}", cache.display()));
    let src = text
        .lines()
        .find_map(|l| l.strip_prefix("CMAKE_HOME_DIRECTORY:INTERNAL="))
        .unwrap_or_else(|| panic!("no CMAKE_HOME_DIRECTORY in {}", cache.display()));
    PathBuf::from(src.trim())
}

/// One change: `anchor` must occur exactly once; it is replaced by `with`.
struct Edit {
    anchor: &'static str,
    with: &'static str,
}

fn patch(path: &Path, edits: &[Edit]) -> String {
    let mut text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    for e in edits {
        let n = text.matches(e.anchor).count();
        assert!(
            n == 1,
            "{}: the anchor {:?} occurs {n} times, not once: llama.cpp changed, so the nova \
             ggml-rpc patch in crates/rpc/build.rs must be updated",
            path.display(),
            e.anchor
        );
        text = text.replacen(e.anchor, e.with, 1);
    }
    text
}

fn write_if_changed(path: &Path, text: &str) {
    if fs::read_to_string(path).ok().as_deref() != Some(text) {
        fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

const TRANSPORT_H: &[Edit] = &[Edit {
    anchor: "    static socket_ptr connect(const char * host, int port);\n",
    with: "    static socket_ptr connect(const char * host, int port);\n    \
           // nova: adopt a connected stream socket (a socketpair end); closes it when released.\n    \
           static socket_ptr from_fd(int fd);\n",
}];

const TRANSPORT_CPP: &[Edit] = &[Edit {
    anchor: "socket_ptr socket_t::connect(const char * host, int port) {\n",
    with: "socket_ptr socket_t::from_fd(int fd) {\n    \
           if (fd < 0) {\n        return nullptr;\n    }\n    \
           return socket_ptr(new socket_t(std::make_unique<impl>(fd)));\n}\n\n\
           socket_ptr socket_t::connect(const char * host, int port) {\n",
}];

const GGML_RPC_CPP: &[Edit] = &[
    // 3. The client hooks, consulted where the dispatcher connects and where a device's memory
    // is asked for.
    Edit {
        anchor: "void rpc_dispatcher::start(const std::string & endpoint) {\n",
        with: r#"// nova: where the client gets its connections and device memory figures.
typedef int  (*nova_rpc_connect_fn)(const char * endpoint, void * ud);
typedef bool (*nova_rpc_memory_fn)(const char * endpoint, uint32_t device, uint64_t * free_mem, uint64_t * total_mem, void * ud);
static std::atomic<nova_rpc_connect_fn> nova_connect_hook{nullptr};
static std::atomic<nova_rpc_memory_fn>  nova_memory_hook{nullptr};
static std::atomic<void *>              nova_hook_ud{nullptr};

extern "C" void nova_rpc_set_client_hooks(nova_rpc_connect_fn connect_fn, nova_rpc_memory_fn memory_fn, void * ud) {
    nova_hook_ud.store(ud);
    nova_memory_hook.store(memory_fn);
    nova_connect_hook.store(connect_fn);
}

void rpc_dispatcher::start(const std::string & endpoint) {
"#,
    },
    Edit {
        anchor: "    sock = socket_t::connect(host.c_str(), port);\n",
        // -2 from the hook: not an endpoint nova routes; dial it as stock ggml-rpc does (the
        // benchmark's reference path to a plain TCP `nova rpc-shard --listen`).
        with: "    nova_rpc_connect_fn nova_connect = nova_connect_hook.load();\n    \
               int nova_fd = nova_connect ? nova_connect(endpoint.c_str(), nova_hook_ud.load()) : -2;\n    \
               sock = nova_fd != -2 ? socket_t::from_fd(nova_fd) : socket_t::connect(host.c_str(), port);\n",
    },
    Edit {
        anchor: "void ggml_backend_rpc_get_device_memory(const char * endpoint, uint32_t device, size_t * free, size_t * total) {\n",
        with: "void ggml_backend_rpc_get_device_memory(const char * endpoint, uint32_t device, size_t * free, size_t * total) {\n    \
               nova_rpc_memory_fn nova_memory = nova_memory_hook.load();\n    \
               uint64_t nova_free = 0, nova_total = 0;\n    \
               if (nova_memory && nova_memory(endpoint, device, &nova_free, &nova_total, nova_hook_ud.load())) {\n        \
               *free = nova_free;\n        *total = nova_total;\n        return;\n    }\n",
    },
    // A device belongs to the registration that made it, so unregistering that one removes its
    // devices from the global list again (stock code files them all under the static RPC reg).
    Edit {
        anchor: "    reg_map[endpoint] = reg;\n",
        with: "    for (auto dev : ctx->devices) {\n        dev->reg = reg;\n    }\n    reg_map[endpoint] = reg;\n",
    },
    // 4. No custom ops from the wire.
    Edit {
        anchor: "    result->op = (ggml_op) tensor->op;\n",
        with: "    if (tensor->op >= GGML_OP_COUNT || tensor->op == GGML_OP_CUSTOM || tensor->op == GGML_OP_MAP_CUSTOM1 ||\n        \
               tensor->op == GGML_OP_MAP_CUSTOM2 || tensor->op == GGML_OP_MAP_CUSTOM3) {\n        \
               GGML_LOG_ERROR(\"[%s] refused op %u: custom and unknown ops are not served\\n\", __func__, tensor->op);\n        \
               return nullptr;\n    }\n    \
               result->op = (ggml_op) tensor->op;\n",
    },
    // 5. Weights packed for the CPU's kernels as on the head (cpp/repack.inc says why and how).
    Edit {
        anchor: "#include <unordered_set>\n",
        with: "#include <unordered_set>\n#include <map>\n",
    },
    Edit {
        anchor: "    std::vector<stored_graph> stored_graphs;\n",
        with: r#"    std::vector<stored_graph> stored_graphs;

    // nova: weights repacked in place (crates/rpc/cpp/repack.inc).
    struct nova_packed {
        ggml_backend_buffer_t plain;
        size_t                nbytes;
        ggml_tensor           shape; // as packed: type, shape, data, traits, the alias buffer
    };
    std::map<uint64_t, nova_packed> nova_packed_at; // by data address
    std::unordered_map<ggml_backend_buffer_t, ggml_backend_buffer_t> nova_aliases; // plain -> CPU_REPACK view
    ggml_backend_buffer_type_t nova_repack_buft = nullptr;
    ggml_backend_buffer_i      nova_repack_iface {};
    bool                       nova_probed = false;
    bool nova_pack_probe(ggml_backend_t backend);
    bool nova_is_alias(ggml_backend_buffer_t buffer) const;
    ggml_backend_buffer_t nova_alias_of(ggml_backend_buffer_t plain);
    std::map<uint64_t, nova_packed>::iterator nova_overlap(uint64_t start, uint64_t size);
    int  nova_write_region(uint64_t start, uint64_t size);
    bool nova_read_region(uint64_t start, uint64_t size);
    void nova_pack_again(uint64_t start);
    bool nova_buffer_packed(ggml_backend_buffer_t buffer) const;
    void nova_forget_buffer(ggml_backend_buffer_t buffer);
    bool nova_pack_graph(ggml_backend_t backend, ggml_cgraph * graph);
"#,
    },
    Edit {
        anchor: "bool rpc_server::graph_compute(const std::vector<uint8_t> & input) {\n",
        with: concat!(
            include_str!("cpp/repack.inc"),
            "\nbool rpc_server::graph_compute(const std::vector<uint8_t> & input) {\n"
        ),
    },
    Edit {
        anchor: "    ggml_status status = ggml_backend_graph_compute(backends[device], graph);\n    \
                 GGML_ASSERT(status == GGML_STATUS_SUCCESS && \"Unsuccessful graph computations are not supported with RPC\");\n    \
                 stored_graphs[device].graph = graph;\n",
        with: "    if (!nova_pack_graph(backends[device], graph)) {\n        return false;\n    }\n    \
               ggml_status status = ggml_backend_graph_compute(backends[device], graph);\n    \
               GGML_ASSERT(status == GGML_STATUS_SUCCESS && \"Unsuccessful graph computations are not supported with RPC\");\n    \
               stored_graphs[device].graph = graph;\n",
    },
    Edit {
        anchor: "    ggml_backend_tensor_set(tensor, data, offset, size);\n",
        with: "    const int nova_w = nova_write_region(in_tensor->data + offset, size);\n    \
               if (nova_w < 0) {\n        return false;\n    }\n    \
               ggml_backend_tensor_set(tensor, data, offset, size);\n    \
               if (nova_w == 1) {\n        nova_pack_again(in_tensor->data + offset);\n    }\n",
    },
    Edit {
        anchor: "    ggml_backend_tensor_set(tensor, cached_file.data(), request.offset, size);\n",
        with: "    const int nova_w = nova_write_region(request.tensor.data + request.offset, size);\n    \
               if (nova_w < 0) {\n        return false;\n    }\n    \
               ggml_backend_tensor_set(tensor, cached_file.data(), request.offset, size);\n    \
               if (nova_w == 1) {\n        nova_pack_again(request.tensor.data + request.offset);\n    }\n",
    },
    Edit {
        anchor: "    ggml_backend_tensor_memset(tensor, request.value, request.offset, request.size);\n",
        with: "    const int nova_w = nova_write_region(request.tensor.data + request.offset, request.size);\n    \
               if (nova_w < 0) {\n        return false;\n    }\n    \
               ggml_backend_tensor_memset(tensor, request.value, request.offset, request.size);\n    \
               if (nova_w == 1) {\n        nova_pack_again(request.tensor.data + request.offset);\n    }\n",
    },
    Edit {
        anchor: "    ggml_backend_tensor_get(tensor, response.data(), request.offset, request.size);\n",
        with: "    if (!nova_read_region(request.tensor.data + request.offset, request.size)) {\n        return false;\n    }\n    \
               ggml_backend_tensor_get(tensor, response.data(), request.offset, request.size);\n",
    },
    Edit {
        anchor: "    response.result = ggml_backend_buffer_copy_tensor(src, dst);\n",
        with: "    if (!nova_read_region(request.src.data, src_size)) {\n        return false;\n    }\n    \
               const int nova_w = nova_write_region(dst_data, src_size);\n    \
               if (nova_w < 0) {\n        return false;\n    }\n    \
               response.result = ggml_backend_buffer_copy_tensor(src, dst);\n    \
               if (nova_w == 1 && response.result) {\n        nova_pack_again(dst_data);\n    }\n",
    },
    Edit {
        anchor: "    ggml_backend_buffer_clear(buffer, request.value);\n",
        with: "    if (nova_buffer_packed(buffer)) {\n        \
               GGML_LOG_ERROR(\"[nova] refused: clearing a buffer that holds repacked weights\\n\");\n        \
               return false;\n    }\n    \
               ggml_backend_buffer_clear(buffer, request.value);\n",
    },
    Edit {
        anchor: "    ggml_backend_buffer_free(buffer);\n    buffers.erase(buffer);\n",
        with: "    nova_forget_buffer(buffer);\n    ggml_backend_buffer_free(buffer);\n    buffers.erase(buffer);\n",
    },
    Edit {
        anchor: "rpc_server::~rpc_server() {\n",
        with: "rpc_server::~rpc_server() {\n    for (auto & a : nova_aliases) {\n        delete a.second;\n    }\n",
    },
    // 2. One session on a connected socket.
    Edit {
        anchor: "static const char * ggml_backend_rpc_device_get_name(ggml_backend_dev_t dev) {\n",
        with: r#"// nova: serve one client on `fd` (which this closes), on device `dev` with `n_threads`, and
// return when the client closes or sends something invalid. 0 = served, -1 = bad fd, -2 = the
// device would not start.
extern "C" int nova_rpc_serve_fd(int fd, ggml_backend_dev_t dev, size_t n_threads) {
    auto sock = socket_t::from_fd(fd);
    if (sock == nullptr) {
        return -1;
    }
    ggml_backend_t backend = ggml_backend_dev_init(dev, nullptr);
    if (backend == nullptr) {
        return -2;
    }
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
    if (reg) {
        auto set_threads = (ggml_backend_set_n_threads_t) ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads");
        if (set_threads) {
            set_threads(backend, n_threads);
        }
    }
    std::vector<ggml_backend_t> backends = { backend };
    rpc_serve_client(backends, nullptr, std::move(sock));
    ggml_backend_free(backend);
    return 0;
}

static const char * ggml_backend_rpc_device_get_name(ggml_backend_dev_t dev) {
"#,
    },
];
