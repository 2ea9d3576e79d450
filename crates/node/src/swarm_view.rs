//! Builds the typed [`SwarmView`] (`GET /v1/swarm`, the dashboard feed, `nova status`) from the
//! router's cluster view and each worker's own report.

use std::sync::Arc;

use nova_proto::{SwarmView, SwarmWorker, WorkerState, WorkerSummary};
use nova_router::{ClusterView, Ineligible};

use crate::Worker;

/// The view of `workers` (listed in `cluster`, same order by id) as of `cluster.now_ms`.
pub(crate) fn build(
    cluster: &ClusterView,
    workers: &[Arc<dyn Worker>],
    forget_after_ms: u64,
) -> SwarmView {
    let entries = cluster
        .workers
        .iter()
        .map(|w| {
            let worker = workers.iter().find(|x| x.id() == w.id);
            let departure = worker.and_then(|x| x.departure());
            let state = match (departure, cluster.check(w, None)) {
                (Some(_), _) => WorkerState::Gone,
                (None, Ok(())) | (None, Err(Ineligible::WrongModel)) => WorkerState::Ready,
                (None, Err(Ineligible::Stale)) => WorkerState::Stale,
                (None, Err(Ineligible::Paused)) => WorkerState::Paused,
                (None, Err(Ineligible::Busy)) => WorkerState::Busy,
            };
            SwarmWorker {
                worker: WorkerSummary {
                    id: w.id.clone(),
                    name: w.name.clone(),
                    models: w.models.clone(),
                    tokens_per_s: w.tokens_per_s,
                    queue_depth: w.queue_depth,
                    queue_capacity: w.queue_capacity,
                    paused: w.paused,
                    last_seen_ms: departure.map_or(w.last_seen_ms, |d| d.last_seen_ms),
                },
                state,
                status: worker.and_then(|x| x.status()),
                left_at_ms: departure.map(|d| d.left_at_ms),
            }
        })
        .collect();
    SwarmView {
        now_ms: cluster.now_ms,
        stale_after_ms: cluster.stale_after_ms,
        forget_after_ms: Some(forget_after_ms),
        models: cluster.models(),
        workers: entries,
        pools: workers.iter().filter_map(|w| w.pool()).collect(),
    }
}
