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
    state: Mutex<(Status, u64)>,
    in_flight: Arc<AtomicUsize>,
}

impl std::fmt::Debug for RemoteWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWorker").field("peer", &self.peer).finish_non_exhaustive()
    }
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
            state: Mutex::new((status, now_ms)),
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Records a heartbeat.
    pub fn update(&self, status: Status, now_ms: u64) {
        *lock(&self.state) = (status, now_ms);
    }

    /// Marks the worker as gone (its membership stream closed): it turns stale at once instead
    /// of after the staleness window, so no new work is sent to a departed device.
    pub fn mark_gone(&self) {
        lock(&self.state).1 = 0;
    }

    /// Its last reported status.
    pub fn status(&self) -> Status {
        lock(&self.state).0.clone()
    }
}

impl crate::Worker for RemoteWorker {
    fn id(&self) -> &str {
        &self.id
    }

    fn status(&self) -> Option<Status> {
        Some(RemoteWorker::status(self))
    }

    fn view(&self, _now_ms: u64) -> WorkerView {
        let (s, seen) = lock(&self.state).clone();
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
        }
    }

    fn submit(&self, req: ValidRequest) -> Result<TokenStream, EngineError> {
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|_| EngineError::Unavailable("remote workers need a tokio runtime".into()))?;
        let cap = lock(&self.state).0.queue_capacity.max(1) as usize;
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

pub(crate) fn short(peer: &PeerId) -> String {
    let s = peer.to_string();
    s[s.len().saturating_sub(8)..].to_string()
}
