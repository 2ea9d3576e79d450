//! A worker on another device, reached over a p2p task stream.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use nova_engine::{EngineError, TokenStream};
use nova_p2p::{
    frame,
    wire::{Status, TaskEvent},
    Control, PeerId, TASK,
};
use nova_proto::ValidRequest;
use nova_router::WorkerView;
use tokio::sync::mpsc;

/// Longest silence tolerated inside a task stream before the worker counts as stalled.
const STALL: Duration = Duration::from_secs(30);

/// A remote worker known from its membership stream.
pub struct RemoteWorker {
    id: String,
    peer: PeerId,
    control: Mutex<Control>,
    state: Mutex<Seen>,
    in_flight: Arc<AtomicUsize>,
}

impl std::fmt::Debug for RemoteWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWorker").field("peer", &self.peer).finish_non_exhaustive()
    }
}

/// What the gateway last heard from a worker.
#[derive(Debug, Clone)]
struct Seen {
    status: Status,
    last_seen_ms: u64,
    left_at_ms: Option<u64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RemoteWorker {
    /// A worker for `peer`, reached through `control`, with its first status.
    pub fn new(peer: PeerId, control: Control, status: Status, now_ms: u64) -> Self {
        Self {
            id: peer.to_string(),
            peer,
            control: Mutex::new(control),
            state: Mutex::new(Seen { status, last_seen_ms: now_ms, left_at_ms: None }),
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Records a heartbeat.
    pub fn update(&self, status: Status, now_ms: u64) {
        let mut s = lock(&self.state);
        s.status = status;
        s.last_seen_ms = now_ms;
    }

    /// Marks the worker as gone at `now_ms` (its membership stream closed): it gets no new work
    /// at once instead of after the staleness window, and is forgotten later. When it was last
    /// seen is kept for the swarm view.
    pub fn mark_gone(&self, now_ms: u64) {
        lock(&self.state).left_at_ms.get_or_insert(now_ms);
    }

    /// Its last reported status.
    pub fn status(&self) -> Status {
        lock(&self.state).status.clone()
    }
}

impl crate::Worker for RemoteWorker {
    fn id(&self) -> &str {
        &self.id
    }

    fn status(&self) -> Option<Status> {
        Some(RemoteWorker::status(self))
    }

    fn peer(&self) -> Option<PeerId> {
        Some(self.peer)
    }

    fn departure(&self) -> Option<crate::Departure> {
        let s = lock(&self.state);
        s.left_at_ms.map(|left_at_ms| crate::Departure { left_at_ms, last_seen_ms: s.last_seen_ms })
    }

    fn view(&self, _now_ms: u64) -> WorkerView {
        let Seen { status: s, last_seen_ms, left_at_ms } = lock(&self.state).clone();
        // The router knows staleness only: a departed worker looks silent since the epoch.
        let seen = if left_at_ms.is_some() { 0 } else { last_seen_ms };
        WorkerView {
            id: self.id.clone(),
            name: s.name,
            models: s.models,
            tokens_per_s: s.tokens_per_s,
            // Our own count is fresher than the last heartbeat's.
            queue_depth: (self.in_flight.load(Ordering::SeqCst) as u32)
                .max(s.queue_depth.min(s.queue_capacity)),
            queue_capacity: s.queue_capacity,
            paused: s.paused,
            last_seen_ms: seen,
            slots: s.slots.as_ref().map_or(1, |x| x.total),
            stream_speeds: s.slots.map(|x| x.stream_speeds).unwrap_or_default(),
        }
    }

    fn retrieve(
        &self,
        query: nova_proto::knowledge::KnowledgeQuery,
    ) -> Option<
        futures_util::future::BoxFuture<
            'static,
            Result<nova_proto::knowledge::KnowledgeReply, String>,
        >,
    > {
        let s = lock(&self.state);
        if s.left_at_ms.is_some() || s.status.knowledge.is_none() {
            return None;
        }
        drop(s);
        let control = lock(&self.control).clone();
        Some(Box::pin(crate::knowledge::query_peer(control, self.peer, query)))
    }

    fn embed(&self, req: nova_proto::EmbedRequest) -> Result<crate::EmbedFuture, EngineError> {
        let (cap, models) = {
            let s = lock(&self.state);
            (s.status.queue_capacity.max(1) as usize, s.status.models.clone())
        };
        let slot = InFlight::take(&self.in_flight, cap)?;
        let control = lock(&self.control).clone();
        let peer = self.peer;
        Ok(Box::pin(async move {
            let _slot = slot;
            crate::embed::ask(control, peer, models, req).await
        }))
    }

    fn submit(&self, req: ValidRequest) -> Result<TokenStream, EngineError> {
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|_| EngineError::Unavailable("remote workers need a tokio runtime".into()))?;
        let cap = lock(&self.state).status.queue_capacity.max(1) as usize;
        if self.in_flight.fetch_add(1, Ordering::SeqCst) >= cap {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err(EngineError::QueueFull { capacity: cap });
        }
        let (tx, rx) = mpsc::channel(32);
        let control = lock(&self.control).clone();
        let (peer, in_flight) = (self.peer, self.in_flight.clone());
        rt.spawn(async move {
            if let Err(e) = run_task(control, peer, req, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
            in_flight.fetch_sub(1, Ordering::SeqCst);
        });
        Ok(rx)
    }
}

async fn run_task(
    mut control: Control,
    peer: PeerId,
    req: ValidRequest,
    tx: &mpsc::Sender<Result<nova_proto::TokenEvent, EngineError>>,
) -> Result<(), EngineError> {
    let unavailable =
        |what: String| EngineError::Unavailable(format!("worker {}: {what}", short(&peer)));
    let mut stream = tokio::time::timeout(Duration::from_secs(5), control.open_stream(peer, TASK))
        .await
        .map_err(|_| unavailable("no task stream within 5 s".into()))?
        .map_err(|e| unavailable(format!("cannot open a task stream: {e}")))?;
    frame::write(&mut stream, &req).await.map_err(|e| unavailable(e.to_string()))?;
    loop {
        let next = tokio::select! {
            // The gateway dropped the job: dropping the stream tells the worker to stop.
            _ = tx.closed() => return Ok(()),
            r = tokio::time::timeout(STALL, frame::read::<_, TaskEvent>(&mut stream)) => r,
        };
        let event = next
            .map_err(|_| unavailable(format!("stalled: nothing for {} s", STALL.as_secs())))?
            .map_err(|e| unavailable(format!("task stream broke: {e}")))?;
        match event {
            TaskEvent::Event(ev) => {
                let done = matches!(ev, nova_proto::TokenEvent::Done { .. });
                if tx.send(Ok(ev)).await.is_err() || done {
                    return Ok(());
                }
            }
            TaskEvent::Error { kind, message } => {
                return Err(EngineError::from_wire(kind, message))
            }
        }
    }
}

/// One request counted against a remote worker's queue until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// Counts one more request, unless `cap` are in flight already.
    fn take(count: &Arc<AtomicUsize>, cap: usize) -> Result<Self, EngineError> {
        if count.fetch_add(1, Ordering::SeqCst) >= cap {
            count.fetch_sub(1, Ordering::SeqCst);
            return Err(EngineError::QueueFull { capacity: cap });
        }
        Ok(Self(count.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(crate) fn short(peer: &PeerId) -> String {
    let s = peer.to_string();
    s[s.len().saturating_sub(8)..].to_string()
}
