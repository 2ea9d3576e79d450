//! Worker side: join a gateway, heartbeat, and run the tasks it sends on the local engine.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt as _;
use nova_engine::{Engine, EngineError};
use nova_p2p::{
    frame,
    wire::{Membership, Status, TaskEvent, TaskRequest},
    Multiaddr, P2p, PeerId, TASK,
};
use nova_proto::{ErrorKind, Limits};
use tokio::sync::watch;

use crate::{
    join::{Finder, JoinTarget},
    DeviceHealth,
};

/// What a worker says about itself.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    /// Device name.
    pub name: String,
    /// Measured generation speed.
    pub tokens_per_s: f64,
    /// nova version.
    pub version: String,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// The device guard's view; `None` runs unguarded (never paused, sensors unknown).
    pub health: Option<watch::Receiver<DeviceHealth>>,
    /// Where the gateway's update announcements go; `None` drops them.
    pub updates: Option<tokio::sync::mpsc::Sender<crate::Announcement>>,
    /// The documents this node shares with the swarm (`--share-knowledge`); `None` shares none
    /// and refuses retrieval requests.
    pub knowledge: Option<Arc<dyn crate::KnowledgeBase>>,
    /// Holding layers of pooled models for the gateway; `None` holds none.
    pub shards: Option<Arc<crate::ShardHostConfig>>,
    /// Where joins, losses and join failures are told (for the terminal); `None` tells nobody.
    /// Bounded: a full channel drops the event, it is in the log too.
    pub events: Option<tokio::sync::mpsc::Sender<crate::JoinEvent>>,
}

fn status(engine: &dyn Engine, info: &WorkerInfo) -> Status {
    let health = engine.health();
    let device = info.health.as_ref().map(|h| h.borrow().clone()).unwrap_or_default();
    let r = &device.reading;
    let free_ram_mb = r.free_ram_mb.or_else(mem_available_mb);
    Status {
        name: info.name.clone(),
        models: vec![engine.info().model.clone()],
        tokens_per_s: info.tokens_per_s,
        queue_depth: health.in_flight as u32,
        queue_capacity: engine.info().capacity() as u32,
        paused: device.paused,
        free_ram_mb,
        cores: std::thread::available_parallelism().ok().map(|n| n.get() as u32),
        battery_pct: r.battery_pct.map(f64::from),
        charging: r.charging,
        temperature_c: r.temp_c.map(f64::from),
        version: info.version.clone(),
        knowledge: info.knowledge.as_ref().map(|k| k.summary()),
        slots: Some(crate::worker::engine_slots(engine)),
        // A paused device holds nothing new: the planner leaves it out.
        pool_offer_mb: info.shards.as_ref().map(|c| {
            if device.paused {
                0
            } else {
                c.offer_mb(free_ram_mb)
            }
        }),
    }
}

pub(crate) fn mem_available_mb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb / 1024)
}

/// Resolves when the guard pauses or resumes the node (never without a guard).
async fn pause_changed(health: &mut Option<watch::Receiver<DeviceHealth>>) {
    let Some(rx) = health else { return std::future::pending().await };
    let was = rx.borrow_and_update().paused;
    if rx.wait_for(|h| h.paused != was).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The gateway's peer id, from the `/p2p/<id>` at the end of its address.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        nova_p2p::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

/// Serves the gateway found through `target` forever: keeps a membership stream open
/// (rejoining with backoff when it breaks, rediscovering on a LAN) and runs incoming tasks on
/// `engine`. Cancel by dropping the future.
pub async fn run_worker(
    p2p: &P2p,
    target: JoinTarget,
    engine: Arc<dyn Engine>,
    info: WorkerInfo,
) -> Result<(), String> {
    let mut control = p2p.control();
    let mut tasks = control.accept(TASK).map_err(|e| e.to_string())?;
    // Tasks are taken only from the gateway this worker joined; any other peer holding the
    // swarm secret (another worker found on the LAN) is refused.
    let (current_tx, current) = watch::channel(None::<PeerId>);
    // Only a node that shares documents speaks the retrieval protocol at all: to the others'
    // gateway the protocol is unsupported, and it skips them at once.
    let queries = match &info.knowledge {
        Some(kb) => {
            let incoming = control.accept(nova_p2p::KNOWLEDGE).map_err(|e| e.to_string())?;
            let (gateway, kb) = (current.clone(), kb.clone());
            futures_util::future::Either::Left(crate::knowledge::serve_queries(
                incoming, gateway, kb,
            ))
        }
        None => futures_util::future::Either::Right(std::future::pending::<()>()),
    };
    // Only a node that offers memory to pooled models speaks ggml-rpc at all.
    let shard_sessions = match &info.shards {
        Some(config) => {
            let incoming = control.accept(nova_p2p::GGML_RPC).map_err(|e| e.to_string())?;
            futures_util::future::Either::Left(crate::shard_host::serve(
                incoming,
                current.clone(),
                config.clone(),
            ))
        }
        None => futures_util::future::Either::Right(std::future::pending::<()>()),
    };
    // Every worker speaks the embedding protocol; its engine may still refuse (no embeddings).
    let embeds = crate::embed::serve(
        control.accept(nova_p2p::EMBED).map_err(|e| e.to_string())?,
        current.clone(),
        engine.clone(),
        info.health.clone(),
    );
    let task_engine = engine.clone();
    let task_health = info.health.clone();
    let serve = async move {
        while let Some((peer, stream)) = tasks.next().await {
            if *current.borrow() != Some(peer) {
                tracing::warn!(peer = %peer, "task from a peer that is not our gateway; refused");
                continue;
            }
            // The gateway stops routing here at the next heartbeat; a task sent before it saw
            // the pause is refused so it is retried elsewhere, not run on a hot or flat device.
            let paused = task_health
                .as_ref()
                .filter(|h| h.borrow().paused)
                .map(|h| h.borrow().reasons.join("; "));
            tokio::spawn(run_task(task_engine.clone(), stream, paused));
        }
    };
    let tell = |event: crate::JoinEvent| {
        if let Some(tx) = &info.events {
            let _ = tx.try_send(event);
        }
    };
    let join = async {
        let mut finder = Finder::new(p2p, target);
        let mut backoff = Duration::from_millis(500);
        // A failure is told when its kind changes, not at every retry; the log has them all.
        let mut last_failure = None;
        let mut lost_at = None::<std::time::Instant>;
        loop {
            match finder.open().await {
                Ok((peer, stream)) => {
                    backoff = Duration::from_millis(500);
                    last_failure = None;
                    current_tx.send_replace(Some(peer));
                    tracing::info!(gateway = %peer, "joined");
                    tell(crate::JoinEvent::Joined {
                        gateway: peer,
                        away: lost_at.take().map(|t| t.elapsed()),
                    });
                    let mut msg = Membership::Hello(status(engine.as_ref(), &info));
                    let mut health = info.health.clone();
                    // The gateway answers on the same stream (update announcements).
                    let (replies, mut stream) = futures_util::AsyncReadExt::split(stream);
                    let listen = crate::updater::read_replies(peer, replies, info.updates.clone());
                    let beat = async {
                        loop {
                            if let Err(e) = frame::write(&mut stream, &msg).await {
                                break format!("a heartbeat could not be sent: {e}");
                            }
                            // A pause or resume is told at once, not at the next heartbeat.
                            tokio::select! {
                                () = tokio::time::sleep(info.heartbeat) => {}
                                () = pause_changed(&mut health) => {}
                            }
                            msg = Membership::Heartbeat(status(engine.as_ref(), &info));
                        }
                    };
                    let why = tokio::select! {
                        why = beat => why,
                        () = listen => "the gateway closed the membership stream".to_owned(),
                    };
                    tracing::info!(%why, "lost the gateway; rejoining");
                    lost_at = Some(std::time::Instant::now());
                    tell(crate::JoinEvent::Lost { why });
                }
                Err(failure) => {
                    tracing::info!(error = %failure, "cannot join the gateway; retrying");
                    if failure.is_fatal() {
                        return Err(failure.message);
                    }
                    if last_failure != Some(failure.kind) {
                        last_failure = Some(failure.kind);
                        tell(crate::JoinEvent::Failed(failure));
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    };
    tokio::select! {
        () = serve => Err("the task listener stopped".into()),
        () = queries => Err("the retrieval listener stopped".into()),
        () = shard_sessions => Err("the ggml-rpc listener stopped".into()),
        () = embeds => Err("the embedding listener stopped".into()),
        r = join => r,
    }
}

async fn run_task(engine: Arc<dyn Engine>, mut stream: nova_p2p::Stream, paused: Option<String>) {
    let req = match tokio::time::timeout(
        Duration::from_secs(10),
        frame::read::<_, TaskRequest>(&mut stream),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "bad task request; dropped");
            return;
        }
        Err(_) => return,
    };
    // A peer can send any bytes that parse: hold the request to this node's own limits before
    // the engine sees it. A refusal is a client error, so the gateway does not retry it.
    if let Err(e) = req.check(&Limits::default()) {
        tracing::warn!(task = %req.id.fmt_short(), error = %e, "task refused: breaks this node's limits");
        let _ = frame::write(
            &mut stream,
            &TaskEvent::Error { kind: ErrorKind::InvalidRequest, message: e.to_string() },
        )
        .await;
        return;
    }
    if let Some(why) = paused {
        let err = EngineError::Paused(why);
        let _ = frame::write(&mut stream, &error_frame(&err)).await;
        return;
    }
    let mut events = match engine.submit(req) {
        Ok(rx) => rx,
        Err(e) => {
            let _ = frame::write(&mut stream, &error_frame(&e)).await;
            return;
        }
    };
    let to_frame = |ev: Result<nova_proto::TokenEvent, EngineError>| match ev {
        Ok(ev) => TaskEvent::Event(ev),
        Err(e) => error_frame(&e),
    };
    while let Some(ev) = events.recv().await {
        // Send whatever else is already waiting in the same write (bounded by the channel).
        let mut batch = vec![to_frame(ev)];
        while let Ok(more) = events.try_recv() {
            batch.push(to_frame(more));
        }
        // A failed write means the gateway dropped the task: returning drops `events`,
        // which cancels the generation.
        if frame::write_many(&mut stream, &batch).await.is_err() {
            return;
        }
    }
}

fn error_frame(e: &EngineError) -> TaskEvent {
    TaskEvent::Error { kind: e.wire_kind(), message: e.to_string() }
}
