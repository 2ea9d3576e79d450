//! A nova node's composition root. [`GatewayNode`] and [`WorkerNode`] start a whole node from
//! one config and stop it in order; the binary only parses arguments and prints. Inside, the
//! [`Gateway`] implements the API's `Inference` port by choosing workers with the router,
//! dispatching to them, combining their answers, and recording the outcome (metrics, win
//! rates, request log).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod bundles;
mod device;
mod embed;
mod gateway;
mod gateway_node;
mod http_server;
mod join;
mod knowledge;
mod local_engine;
mod membership;
mod metrics;
mod pool;
mod remote;
mod serve_tasks;
mod shard_host;
mod spawn_error;
mod swarm_view;
mod updater;
mod worker;
mod worker_node;

pub use bundles::{serve_bundles, ShelfBundles};
pub use device::{spawn_guard, DeviceHealth};
pub use gateway::{Gateway, GatewayConfig};
pub use gateway_node::{
    GatewayNode, GatewayNodeConfig, LocalSummary, LocalWorkerSpec, P2pSettings,
};
pub use http_server::HttpConfig;
pub use join::{FailKind, JoinEvent, JoinFailure, JoinTarget};
pub use knowledge::KnowledgeBase;
pub use local_engine::{EngineSpec, LocalEngine};
pub use membership::MAX_MEMBERS;
pub use nova_api::{parse_cors_origin, HeaderValue, MAX_CORS_ORIGINS};
pub use nova_store::secure_dir;
pub use pool::{PoolSpec, PooledWorker};
pub use remote::RemoteWorker;
pub use serve_tasks::{peer_of, run_worker, WorkerInfo};
pub use shard_host::ShardHostConfig;
pub use spawn_error::SpawnError;
pub use updater::{run_updater, Announcement, OnEvent, UpdateEvent, UpdaterConfig};
pub use worker::{Departure, EmbedFuture, LocalWorker, SwarmFull, Worker};
pub use worker_node::{GuardSettings, UpdateSettings, WorkerNode, WorkerNodeConfig};

/// Milliseconds since the Unix epoch: the clock heartbeats and staleness are measured in.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
