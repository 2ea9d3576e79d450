//! Gateway side of membership: workers open a stream, say hello, then heartbeat on it. The
//! gateway answers each with the latest update bundle's manifest, when it publishes one.
//!
//! Bounds: at most [`MAX_JOINING`] streams may be between open and hello at once, and at most
//! `max_members` connected workers are listed (checked under the worker list's lock, see
//! [`crate::Gateway::add_worker_bounded`]); departed workers count against neither and are
//! forgotten `forget_after` after they leave ([`sweep`]).

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt as _;
use nova_p2p::{frame, wire::Membership, Control, PeerId, Stream, MEMBERSHIP};
use nova_store::NodeRecord;
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{now_ms, remote::short, Gateway, RemoteWorker};

/// Default most connected workers listed at once; more are refused.
pub const MAX_MEMBERS: usize = 1024;
/// Membership streams that may be waiting for their hello at once; more are dropped.
const MAX_JOINING: usize = 64;
/// Time a new stream has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// How the gateway bounds its membership.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Most connected workers.
    pub(crate) max_members: usize,
    /// A connected worker silent this long is taken as gone and its stream dropped.
    pub(crate) silence: Duration,
}

fn record(id: &str, status: &nova_p2p::wire::Status, now: u64) -> NodeRecord {
    // The store keeps the first `first_seen_ms` it saw for this id.
    NodeRecord { id: id.into(), status: status.clone(), first_seen_ms: now, last_seen_ms: now }
}

/// Accepts membership streams until `cancel` fires or `control`'s swarm stops; each worker is
/// served by its own task in this function's `JoinSet`, all stopped on return. Cancel-safe.
pub(crate) async fn accept_members(
    gateway: Gateway,
    mut control: Control,
    shelf: Option<Arc<nova_update::Shelf>>,
    bounds: Bounds,
    cancel: CancellationToken,
) {
    let mut incoming = match control.accept(MEMBERSHIP) {
        Ok(i) => i,
        Err(e) => {
            tracing::error!(error = %e, "membership protocol already registered");
            return;
        }
    };
    let joining = Arc::new(Semaphore::new(MAX_JOINING));
    let mut members = JoinSet::new();
    loop {
        let (peer, stream) = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            Some(_) = members.join_next(), if !members.is_empty() => continue,
            next = incoming.next() => match next {
                Some(n) => n,
                None => break,
            },
        };
        let Ok(permit) = joining.clone().try_acquire_owned() else {
            tracing::warn!(peer = %peer, "{MAX_JOINING} workers are joining at once; dropped one");
            continue;
        };
        let member = Member {
            gateway: gateway.clone(),
            control: control.clone(),
            shelf: shelf.clone(),
            bounds,
            peer,
        };
        members.spawn(member.serve(stream, permit));
    }
    members.shutdown().await;
}

/// One worker's membership stream.
struct Member {
    gateway: Gateway,
    control: Control,
    shelf: Option<Arc<nova_update::Shelf>>,
    bounds: Bounds,
    peer: PeerId,
}

impl Member {
    async fn serve(self, mut stream: Stream, joining: OwnedSemaphorePermit) {
        let peer = self.peer;
        let first =
            tokio::time::timeout(HELLO_TIMEOUT, frame::read::<_, Membership>(&mut stream)).await;
        drop(joining);
        let status = match first {
            Ok(Ok(Membership::Hello(s))) => s.bounded(),
            Ok(Ok(other)) => {
                tracing::warn!(peer = %peer, ?other, "worker did not start with hello; dropped");
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(peer = %peer, error = %e, "bad membership frame; dropped");
                return;
            }
            Err(_) => {
                tracing::warn!(peer = %peer, "no hello within {HELLO_TIMEOUT:?}; dropped");
                return;
            }
        };
        let id = peer.to_string();
        let now = now_ms();
        let worker = Arc::new(RemoteWorker::new(peer, self.control, status.clone(), now));
        if let Err(e) = self.gateway.add_worker_bounded(worker.clone(), self.bounds.max_members) {
            tracing::warn!(peer = %peer, "refusing a worker: {e}");
            return;
        }
        tracing::info!(worker = %short(&peer), name = %status.name, models = ?status.models, "worker joined");
        self.gateway.record_node(record(&id, &status, now));
        let shelf = self.shelf.as_deref();
        let mut announcing = true;
        crate::bundles::announce(shelf, &mut stream, &mut announcing).await;
        loop {
            let next = tokio::time::timeout(
                self.bounds.silence,
                frame::read::<_, Membership>(&mut stream),
            )
            .await;
            match next {
                Ok(Ok(Membership::Heartbeat(s))) | Ok(Ok(Membership::Hello(s))) => {
                    let s = s.bounded();
                    let now = now_ms();
                    self.gateway.record_node(record(&id, &s, now));
                    worker.update(s, now);
                    crate::bundles::announce(shelf, &mut stream, &mut announcing).await;
                }
                Ok(Err(e)) => {
                    // Listed as gone until forgotten, so the swarm view shows the departure; a
                    // rejoin replaces it.
                    tracing::info!(worker = %short(&peer), reason = %e, "worker left");
                    worker.mark_gone(now_ms());
                    return;
                }
                Err(_) => {
                    tracing::info!(worker = %short(&peer), "worker silent for {:?}; taken as gone", self.bounds.silence);
                    worker.mark_gone(now_ms());
                    return;
                }
            }
        }
    }
}

/// Forgets departed workers every `every` until `cancel` fires. Cancel-safe.
pub(crate) async fn sweep(gateway: Gateway, every: Duration, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            _ = tick.tick() => {
                let n = gateway.forget_departed(now_ms());
                if n > 0 {
                    tracing::debug!(forgotten = n, "forgot departed workers");
                }
            }
        }
    }
}
