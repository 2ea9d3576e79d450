//! llama.cpp's RPC backend (ggml-rpc) inside nova, for splitting one model's layers across
//! devices.
//!
//! `build.rs` compiles ggml-rpc from the llama.cpp tree nova already embeds, patched so that
//! neither side ever opens a TCP port: the shard serves a socket nova hands it ([`serve`]), and
//! the head's client asks nova for a socket per connection ([`Route`]). nova carries those
//! sockets over its own authenticated swarm streams.
//!
//! All unsafe code is in the `ffi` module.

mod bridge;
mod ffi;
pub mod wire;

pub use bridge::{shard, Link, ShardError, Traffic};
pub use ffi::{add_route, remove_route, serve, serve_tcp, with_devices, Route, Shard, MAX_SHARDS};

/// What can go wrong setting up ggml-rpc.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// This build of ggml has no CPU device to serve layers with.
    #[error("ggml has no CPU device to serve layers with")]
    NoCpu,
    /// `nova_rpc_serve_fd` returned an error code.
    #[error("the shard server failed (code {0})")]
    Serve(i32),
    /// A shard names an endpoint no route was added for.
    #[error("no route to shard endpoint {0:?}")]
    NotRouted(String),
    /// An endpoint name with a NUL byte.
    #[error("shard endpoint {0:?} is not a valid name")]
    BadName(String),
    /// The shard answered but reported no devices.
    #[error("shard {0:?} reported no devices")]
    NoDevices(String),
    /// More shards than llama.cpp takes devices.
    #[error("{0} shards asked for; a model splits over at most {max}", max = ffi::MAX_SHARDS)]
    TooManyShards(usize),
    /// A shard given no layers.
    #[error("shard {0:?} was given no layers")]
    NoLayers(String),
    /// A registered device was missing from ggml's global list.
    #[error("ggml's device list lost a shard device")]
    Registry,
}
