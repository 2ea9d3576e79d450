//! Gateway side of membership: workers open a stream, say hello, then heartbeat on it. The
//! gateway answers each with the latest update bundle's manifest, when it publishes one.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt as _;
use nova_p2p::{frame, wire::Membership, Control, MEMBERSHIP};
use nova_store::NodeRecord;

use crate::{now_ms, remote::short, Gateway, RemoteWorker};

/// Most workers registered at once; more are refused.
const MAX_MEMBERS: usize = 1024;

fn record(id: &str, status: &nova_p2p::wire::Status, now: u64) -> NodeRecord {
    // The store keeps the first `first_seen_ms` it saw for this id.
    NodeRecord { id: id.into(), status: status.clone(), first_seen_ms: now, last_seen_ms: now }
}

/// Accepts membership streams until `control`'s swarm stops. Each worker gets its own task;
/// a worker that sends garbage is dropped and logged.
pub async fn accept_members(gateway: Gateway, control: Control) {
    accept_members_with(gateway, control, None).await
}

/// [`accept_members`], announcing the latest bundle on `shelf` (if any) to every worker.
pub async fn accept_members_with(
    gateway: Gateway,
    mut control: Control,
    shelf: Option<Arc<nova_update::Shelf>>,
) {
    let mut incoming = match control.accept(MEMBERSHIP) {
        Ok(i) => i,
        Err(e) => {
            tracing::error!(error = %e, "membership protocol already registered");
            return;
        }
    };
    while let Some((peer, mut stream)) = incoming.next().await {
        if gateway.view().workers.len() >= MAX_MEMBERS {
            tracing::warn!(peer = %peer, "refusing a worker: the swarm is at its size limit");
            continue;
        }
        let gateway = gateway.clone();
        let control = control.clone();
        let shelf = shelf.clone();
        tokio::spawn(async move {
            let first = tokio::time::timeout(
                Duration::from_secs(10),
                frame::read::<_, Membership>(&mut stream),
            )
            .await;
            let status = match first {
                Ok(Ok(Membership::Hello(s))) => s,
                Ok(Ok(other)) => {
                    tracing::warn!(peer = %peer, ?other, "worker did not start with hello; dropped");
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(peer = %peer, error = %e, "bad membership frame; dropped");
                    return;
                }
                Err(_) => {
                    tracing::warn!(peer = %peer, "no hello within 10 s; dropped");
                    return;
                }
            };
            let id = peer.to_string();
            tracing::info!(worker = %short(&peer), name = %status.name, models = ?status.models, "worker joined");
            gateway.record_node(record(&id, &status, now_ms()));
            let worker = Arc::new(RemoteWorker::new(peer, control, status, now_ms()));
            gateway.add_worker(worker.clone());
            let mut announcing = true;
            crate::bundles::announce(shelf.as_deref(), &mut stream, &mut announcing).await;
            loop {
                match frame::read::<_, Membership>(&mut stream).await {
                    Ok(Membership::Heartbeat(s)) | Ok(Membership::Hello(s)) => {
                        let now = now_ms();
                        gateway.record_node(record(&id, &s, now));
                        worker.update(s, now);
                        crate::bundles::announce(shelf.as_deref(), &mut stream, &mut announcing)
                            .await;
                    }
                    Err(e) => {
                        // It stays listed (as stale) so the swarm view shows the departure;
                        // a rejoin replaces it.
                        tracing::info!(worker = %short(&peer), reason = %e, "worker left");
                        worker.mark_gone();
                        return;
                    }
                }
            }
        });
    }
}
