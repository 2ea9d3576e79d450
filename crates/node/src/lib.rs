//! A nova node's composition: the [`Gateway`] implements the API's `Inference` port by choosing
//! workers with the router, dispatching to them, combining their answers, and recording the
//! outcome (metrics, win rates, request log).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod bundles;
mod device;
mod gateway;
mod join;
mod membership;
mod metrics;
mod remote;
mod serve_tasks;
mod updater;
mod worker;

pub use bundles::{serve_bundles, ShelfBundles};
pub use device::{spawn_guard, DeviceHealth};
pub use gateway::{Gateway, GatewayConfig};
pub use join::JoinTarget;
pub use membership::{accept_members, accept_members_with};
pub use remote::RemoteWorker;
pub use serve_tasks::{peer_of, run_worker, WorkerInfo};
pub use updater::{run_updater, Announcement, OnEvent, UpdateEvent, UpdaterConfig};
pub use worker::{LocalWorker, Worker};

/// Milliseconds since the Unix epoch: the clock heartbeats and staleness are measured in.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
