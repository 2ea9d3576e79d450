//! A whole worker node: the p2p side, its engine, the device guard, the updater and the
//! membership loop that joins a gateway and runs the tasks it sends.
//!
//! Topology: [`WorkerNode::spawn`] starts p2p first (a bad address fails before a model
//! loads), then the engine and its speed probe, the guard and the updater, and runs the worker
//! loop in its `JoinSet` under one cancellation token. [`WorkerNode::shutdown`] stops the loop
//! (the gateway sees the stream close and lists the worker as gone), then drops p2p and the
//! engine.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use nova_guard::{Guard, Sources};
use nova_p2p::{P2p, P2pConfig, PeerId};
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    local_engine::{self, EngineSpec},
    Announcement, JoinTarget, OnEvent, P2pSettings, SpawnError, UpdaterConfig, WorkerInfo,
};

/// How long the worker's tasks may take to stop before they are aborted.
const TASKS_GRACE: Duration = Duration::from_secs(2);
/// Announcements waiting for the updater; more are dropped (the next heartbeat repeats them).
const ANNOUNCEMENTS: usize = 4;
/// Join events waiting for the terminal; more are dropped (they are in the log too).
const JOIN_EVENTS: usize = 16;

/// The device guard's inputs.
#[derive(Debug)]
pub struct GuardSettings {
    /// Where the sensors are read.
    pub sources: Sources,
    /// The pause policy.
    pub guard: Guard,
    /// Time between two readings.
    pub interval: Duration,
}

/// Self-update: how to verify and install, and whom to tell.
#[derive(Clone)]
pub struct UpdateSettings {
    /// Verification and installation.
    pub config: UpdaterConfig,
    /// Told about every step (printing is the caller's business).
    pub on_event: OnEvent,
}

impl std::fmt::Debug for UpdateSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateSettings").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Everything a worker node needs.
#[derive(Debug)]
pub struct WorkerNodeConfig {
    /// The p2p side (the listen address matters only for discovery).
    pub p2p: P2pSettings,
    /// Where the gateway is.
    pub target: JoinTarget,
    /// Name shown in the swarm view.
    pub name: String,
    /// nova version reported in heartbeats.
    pub version: String,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// The engine.
    pub engine: EngineSpec,
    /// The device guard; `None` runs unguarded (never paused, sensors unknown).
    pub guard: Option<GuardSettings>,
    /// Self-update; `None` ignores the gateway's announcements.
    pub updates: Option<UpdateSettings>,
    /// The documents it shares (`--share-knowledge`); `None` shares none.
    pub knowledge: Option<Arc<dyn crate::KnowledgeBase>>,
    /// Holding layers of models pooled across the swarm; `None` holds none.
    pub shards: Option<crate::ShardHostConfig>,
}

/// A running worker node. Stop it with [`WorkerNode::shutdown`]; dropping it aborts every
/// task without waiting.
#[must_use = "dropping the node stops it"]
#[derive(Debug)]
pub struct WorkerNode {
    peer_id: PeerId,
    model: String,
    tokens_per_s: f64,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
    p2p: Option<Arc<P2p>>,
    failure: Arc<Mutex<Option<String>>>,
    join_events: Option<mpsc::Receiver<crate::JoinEvent>>,
}

impl WorkerNode {
    /// Starts the worker; it joins its gateway in the background (retrying with backoff). Not
    /// cancel-safe: a dropped future may leave the engine loading on its thread.
    pub async fn spawn(config: WorkerNodeConfig) -> Result<Self, SpawnError> {
        let p2p = Arc::new(
            P2p::spawn(P2pConfig {
                key: config.p2p.key.clone(),
                secret: config.p2p.secret.clone(),
                listen: vec![config.p2p.listen.clone()],
                idle_timeout: Duration::from_secs(3600),
                mdns: config.p2p.mdns,
            })
            .map_err(|e| SpawnError::P2p(e.to_string()))?,
        );
        let loaded = local_engine::load(config.engine).await?;
        let model = loaded.engine.info().model.clone();
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let updates = config.updates.map(|u| {
            let (tx, rx) = mpsc::channel::<Announcement>(ANNOUNCEMENTS);
            let (control, stop) = (p2p.control(), cancel.child_token());
            tasks.spawn(async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = crate::run_updater(control, u.config, rx, u.on_event) => {}
                }
            });
            tx
        });
        let health = match config.guard {
            Some(g) => Some(crate::spawn_guard(g.sources, g.guard, g.interval).await),
            None => None,
        };
        let (events, join_events) = mpsc::channel(JOIN_EVENTS);
        let info = WorkerInfo {
            name: config.name,
            tokens_per_s: loaded.tokens_per_s,
            version: config.version,
            heartbeat: config.heartbeat.max(Duration::from_millis(100)),
            health,
            updates,
            knowledge: config.knowledge,
            shards: config.shards.map(Arc::new),
            events: Some(events),
        };
        let failure = Arc::new(Mutex::new(None));
        tasks.spawn({
            let (p2p, engine, target) = (p2p.clone(), loaded.engine.clone(), config.target);
            let (stop, root, failure) = (cancel.child_token(), cancel.clone(), failure.clone());
            async move {
                let outcome = tokio::select! {
                    () = stop.cancelled() => return,
                    r = crate::run_worker(&p2p, target, engine, info) => r,
                };
                let why = outcome.err().unwrap_or_else(|| "the worker loop ended".into());
                tracing::error!(reason = %why, "the worker stopped");
                *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
                root.cancel();
            }
        });
        Ok(Self {
            peer_id: p2p.peer_id(),
            model,
            tokens_per_s: loaded.tokens_per_s,
            cancel,
            tasks,
            p2p: Some(p2p),
            failure,
            join_events: Some(join_events),
        })
    }

    /// Joins, losses and join failures as they happen, for the terminal; `None` once taken.
    pub fn join_events(&mut self) -> Option<mpsc::Receiver<crate::JoinEvent>> {
        self.join_events.take()
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The model its engine serves.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Its measured speed, tokens per second.
    pub fn tokens_per_s(&self) -> f64 {
        self.tokens_per_s
    }

    /// Resolves when the node stops by itself; see [`Self::failure`]. Cancel-safe.
    pub async fn stopped(&self) {
        self.cancel.cancelled().await
    }

    /// Why the node stopped by itself, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops the worker loop, the updater and the guard's readers, then the p2p swarm and the
    /// engine. Bounded in time. Not cancel-safe: a dropped future aborts what is left.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        let drained = tokio::time::timeout(TASKS_GRACE, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            self.tasks.shutdown().await;
        }
        drop(self.p2p.take());
    }
}

impl Drop for WorkerNode {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
