//! The only unsafe code in nova: calls into ggml-rpc (patched and compiled by `build.rs`) and
//! into ggml's backend registry (bound by llama-cpp-sys-2).
//!
//! Everything here is wrapped in a safe API:
//! - [`serve`] runs one shard session on a socket;
//! - [`add_route`] tells the client side how to reach an endpoint name, and [`with_devices`]
//!   makes those endpoints' devices visible to one model load.
//!
//! ggml-rpc's client dials by endpoint name. nova installs a process-wide hook once: for each
//! name it looks up the [`Route`] registered here and hands ggml-rpc the socket the route
//! returns, so the client never opens a TCP connection of its own.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Once, PoisonError};

use llama_cpp_sys_2 as sys;

use crate::Error;

unsafe extern "C" {
    /// Added by build.rs: serves one client on `fd` (and closes it).
    fn nova_rpc_serve_fd(fd: c_int, dev: sys::ggml_backend_dev_t, n_threads: usize) -> c_int;
    /// Added by build.rs: where the client gets its sockets and device memory figures.
    /// Stock ggml-rpc: binds `endpoint` (`host:port`) and serves clients one after another,
    /// forever.
    fn ggml_backend_rpc_start_server(
        endpoint: *const c_char,
        cache_dir: *const c_char,
        n_threads: usize,
        n_devices: usize,
        devices: *mut sys::ggml_backend_dev_t,
    );
    fn nova_rpc_set_client_hooks(
        connect: Option<unsafe extern "C" fn(*const c_char, *mut c_void) -> c_int>,
        memory: Option<
            unsafe extern "C" fn(*const c_char, u32, *mut u64, *mut u64, *mut c_void) -> bool,
        >,
        ud: *mut c_void,
    );
    /// Stock ggml-rpc: connects to `endpoint`, asks its device count and returns a registration
    /// with one device per server device (NULL when it has none).
    fn ggml_backend_rpc_add_server(endpoint: *const c_char) -> sys::ggml_backend_reg_t;
}

/// How the client side reaches one endpoint name.
pub trait Route: Send + Sync {
    /// A connected stream socket whose other end speaks ggml-rpc's server side. Called for
    /// every connection ggml-rpc opens to the endpoint (a load opens several short ones).
    fn connect(&self) -> io::Result<OwnedFd>;
}

struct Endpoint {
    /// `None`: a plain TCP `ip:port` ggml-rpc server, dialled by ggml-rpc itself.
    route: Option<Arc<dyn Route>>,
    /// What the device reports as its memory, in bytes, when set. llama.cpp divides the
    /// offloaded layers among devices in proportion to it.
    memory: Option<u64>,
}

fn endpoints() -> MutexGuard<'static, HashMap<String, Endpoint>> {
    static ENDPOINTS: LazyLock<Mutex<HashMap<String, Endpoint>>> = LazyLock::new(Mutex::default);
    ENDPOINTS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes `endpoint` reachable through `route`, replacing any earlier route of that name.
///
/// ggml-rpc keeps per-endpoint state for the life of the process (its registrations and
/// allocation caches are never freed), so a new pool should use new names.
pub fn add_route(endpoint: &str, route: Arc<dyn Route>) {
    install_hooks();
    endpoints().insert(endpoint.to_owned(), Endpoint { route: Some(route), memory: None });
}

/// Forgets `endpoint`: later connections to it fail (and ggml-rpc aborts on a failed
/// connection, so only remove a route once no model uses it).
pub fn remove_route(endpoint: &str) {
    endpoints().remove(endpoint);
}

fn install_hooks() {
    static HOOKS: Once = Once::new();
    // SAFETY: both callbacks are `extern "C"`, never unwind (each body is in catch_unwind) and
    // only read the endpoint map; the user-data pointer is unused (null).
    HOOKS.call_once(|| unsafe {
        nova_rpc_set_client_hooks(Some(connect_hook), Some(memory_hook), std::ptr::null_mut())
    });
}

/// ggml-rpc's dispatcher calls this instead of dialling. -1 makes it abort the process, so
/// routes return a socket even for a dead shard (the bridge then answers for it); -2 (a name
/// with no route) lets it dial `host:port` over TCP as stock ggml-rpc does.
unsafe extern "C" fn connect_hook(endpoint: *const c_char, _ud: *mut c_void) -> c_int {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: ggml-rpc passes `endpoint.c_str()` of a live std::string.
        let name = unsafe { CStr::from_ptr(endpoint) }.to_string_lossy();
        let route = endpoints().get(name.as_ref()).and_then(|e| e.route.clone());
        // Not routed: a plain `host:port` ggml-rpc server, dialled by ggml-rpc itself.
        let Some(route) = route else { return -2 };
        match route.connect() {
            Ok(fd) => fd.into_raw_fd(),
            Err(e) => {
                tracing::error!(endpoint = %name, error = %e, "could not open a shard connection");
                -1
            }
        }
    }))
    .unwrap_or(-1)
}

unsafe extern "C" fn memory_hook(
    endpoint: *const c_char,
    _device: u32,
    free: *mut u64,
    total: *mut u64,
    _ud: *mut c_void,
) -> bool {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: as in connect_hook.
        let name = unsafe { CStr::from_ptr(endpoint) }.to_string_lossy();
        let Some(bytes) = endpoints().get(name.as_ref()).and_then(|e| e.memory) else {
            return false;
        };
        // SAFETY: ggml-rpc passes pointers to two live locals.
        unsafe {
            *free = bytes;
            *total = bytes;
        }
        true
    }))
    .unwrap_or(false)
}

/// Serves one ggml-rpc client on `socket` with this machine's CPU and `threads` threads, until
/// the client closes it or sends something invalid. Blocks; the socket is closed on return.
///
/// The server trusts its client with memory-safety-relevant requests: call this only in a
/// process of its own (see `nova rpc-shard`), on a socket only the planned head can reach.
pub fn serve(socket: OwnedFd, threads: usize) -> Result<(), Error> {
    // SAFETY: ggml's registry is initialised on first use; a CPU device always exists in a
    // build with the CPU backend (nova's only backend).
    let cpu = unsafe { sys::ggml_backend_dev_by_type(sys::GGML_BACKEND_DEVICE_TYPE_CPU) };
    if cpu.is_null() {
        return Err(Error::NoCpu);
    }
    let fd = socket.into_raw_fd();
    // SAFETY: `fd` is an open socket we own; nova_rpc_serve_fd takes it over and closes it.
    match unsafe { nova_rpc_serve_fd(fd, cpu, threads.max(1)) } {
        0 => Ok(()),
        -2 => Err(Error::NoCpu),
        code => Err(Error::Serve(code)),
    }
}

/// Serves ggml-rpc on TCP `endpoint` exactly as llama.cpp's own `rpc-server` does (the same
/// stock function), with no checks of any kind: the benchmarks' reference for nova's tunnel.
/// Never returns unless the port cannot be bound.
pub fn serve_tcp(endpoint: &str, threads: usize) -> Result<(), Error> {
    let name = CString::new(endpoint).map_err(|_| Error::BadName(endpoint.to_owned()))?;
    // SAFETY: as in `serve`.
    let mut cpu = unsafe { sys::ggml_backend_dev_by_type(sys::GGML_BACKEND_DEVICE_TYPE_CPU) };
    if cpu.is_null() {
        return Err(Error::NoCpu);
    }
    // SAFETY: `name` lives across the call; one valid device pointer is passed with count 1.
    unsafe {
        ggml_backend_rpc_start_server(name.as_ptr(), std::ptr::null(), threads.max(1), 1, &mut cpu)
    };
    Err(Error::Serve(-3))
}

/// Shards for one load: each endpoint name (already routed by [`add_route`]) and the number of
/// layers llama.cpp should put on it.
#[derive(Debug, Clone)]
pub struct Shard {
    /// The routed endpoint name.
    pub endpoint: String,
    /// Layers for this shard (at least 1).
    pub layers: u32,
    /// The link its connections are bridged over: the engine checks it after every decode.
    pub link: Arc<crate::Link>,
}

/// Most shards one model may be split over: llama.cpp takes 16 devices, and the head keeps one
/// part of the model on its CPU besides.
pub const MAX_SHARDS: usize = 15;

/// Registers the shards' devices in ggml's global device list, runs `load` with their global
/// indices (for `LlamaModelParams::with_devices`), then unregisters them.
///
/// Held under one process-wide lock: while the devices are registered, a load that does not
/// name its devices would offload to them too. nova's other loads name none
/// (`with_devices(&[])` = CPU only), and this lock keeps two split loads apart.
///
/// Each shard reports `layers` MiB of memory (the last one `layers + 1`, for the output layer
/// llama.cpp also gives it), so llama.cpp's proportional split puts exactly `layers` on each.
pub fn with_devices<R>(shards: &[Shard], load: impl FnOnce(&[usize]) -> R) -> Result<R, Error> {
    // Checked before anything connects: llama.cpp takes at most 16 devices, and a shard of no
    // layers would get only the output layer's proportion.
    if shards.len() > MAX_SHARDS {
        return Err(Error::TooManyShards(shards.len()));
    }
    if let Some(s) = shards.iter().find(|s| s.layers == 0) {
        return Err(Error::NoLayers(s.endpoint.clone()));
    }
    static LOCK: Mutex<()> = Mutex::new(());
    let _one_at_a_time = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    install_hooks();
    let mut regs = Registered(Vec::new());
    for (i, s) in shards.iter().enumerate() {
        {
            let mut map = endpoints();
            // A plain `ip:port` is a stock TCP server (the benchmarks' reference); any other
            // name must have been routed.
            if !map.contains_key(&s.endpoint) {
                if s.endpoint.parse::<std::net::SocketAddr>().is_err() {
                    return Err(Error::NotRouted(s.endpoint.clone()));
                }
                map.insert(s.endpoint.clone(), Endpoint { route: None, memory: None });
            }
            let e = map.get_mut(&s.endpoint).expect("inserted above");
            let last = u64::from(i + 1 == shards.len());
            e.memory = Some((u64::from(s.layers) + last) << 20);
        }
        let name =
            CString::new(s.endpoint.as_str()).map_err(|_| Error::BadName(s.endpoint.clone()))?;
        // SAFETY: `name` is a valid C string for the call. add_server connects through our hook.
        let reg = unsafe { ggml_backend_rpc_add_server(name.as_ptr()) };
        if reg.is_null() {
            return Err(Error::NoDevices(s.endpoint.clone()));
        }
        // SAFETY: `reg` is a live registration (ggml-rpc never frees them); registering adds its
        // devices to the global list. It is unregistered again when `regs` drops.
        unsafe { sys::ggml_backend_register(reg) };
        regs.0.push(reg);
    }
    let mut indices = Vec::new();
    for &reg in &regs.0 {
        // SAFETY: registry reads on registrations made above, under our lock.
        unsafe {
            for d in 0..sys::ggml_backend_reg_dev_count(reg) {
                let dev = sys::ggml_backend_reg_dev_get(reg, d);
                let found = (0..sys::ggml_backend_dev_count())
                    .find(|&j| sys::ggml_backend_dev_get(j) == dev);
                indices.push(found.ok_or(Error::Registry)?);
            }
        }
    }
    Ok(load(&indices))
}

/// Registrations to remove from ggml's global list, also when a load panics.
struct Registered(Vec<sys::ggml_backend_reg_t>);

impl Drop for Registered {
    fn drop(&mut self) {
        for &reg in &self.0 {
            // SAFETY: `reg` was registered by with_devices; the patch made each device belong
            // to its registration, so this removes exactly these devices. Loaded models keep
            // their own device pointers, which stay valid (ggml-rpc never frees them).
            unsafe { sys::ggml_backend_unload(reg) };
        }
    }
}
