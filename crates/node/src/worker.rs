//! Workers: anything that can run a request and stream tokens back.

use std::{fmt, sync::Arc};

use futures_util::future::BoxFuture;
use nova_engine::{Engine, EngineError, TokenStream};
use nova_proto::{
    knowledge::{KnowledgeQuery, KnowledgeReply},
    EmbedRequest, Embeddings, NodeStatus, Slots, ValidRequest,
};
use nova_router::WorkerView;

/// A worker the gateway can dispatch to: a local engine now, a remote node over p2p later.
pub trait Worker: Send + Sync + fmt::Debug + 'static {
    /// Stable id.
    fn id(&self) -> &str;
    /// Its state for routing, as of `now_ms`.
    fn view(&self, now_ms: u64) -> WorkerView;
    /// Starts a generation. Dropping the stream cancels it.
    fn submit(&self, req: ValidRequest) -> Result<TokenStream, EngineError>;
    /// What the worker last said about its device (battery, temperature, version…), for the
    /// swarm view. `None` when it says nothing beyond its [`WorkerView`].
    fn status(&self) -> Option<NodeStatus> {
        None
    }
    /// When and how it left, once its connection closed. `None` while it is connected (and
    /// always for a worker in this process).
    fn departure(&self) -> Option<Departure> {
        None
    }
    /// The node's p2p identity, for a worker on another device.
    fn peer(&self) -> Option<nova_p2p::PeerId> {
        None
    }
    /// For a model pooled across devices: who holds which layers, and whether it is ready.
    fn pool(&self) -> Option<nova_proto::PoolView> {
        None
    }
    /// Starts embedding `req` on the worker's model: refused at once when it is busy or has
    /// no embeddings, else the future of the vectors. Dropping the future cancels the work.
    fn embed(&self, req: EmbedRequest) -> Result<EmbedFuture, EngineError> {
        let _ = req;
        Err(EngineError::Unsupported("this worker does not compute embeddings".into()))
    }
    /// Asks the worker's node for passages of the documents it shares. `None` when it shares
    /// none (or is gone). The caller bounds the time.
    fn retrieve(
        &self,
        _query: KnowledgeQuery,
    ) -> Option<BoxFuture<'static, Result<KnowledgeReply, String>>> {
        None
    }
}

/// The vectors of an embedding request a worker took.
pub type EmbedFuture = BoxFuture<'static, Result<Embeddings, EngineError>>;

/// A worker that left: its membership stream closed. It stays listed (`gone`) until it is
/// forgotten or rejoins, and counts against no limit meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Departure {
    /// When its stream closed, in ms on the gateway's clock.
    pub left_at_ms: u64,
    /// When it was last heard from (its last heartbeat), in ms on the gateway's clock.
    pub last_seen_ms: u64,
}

/// The swarm is at its size limit: a worker was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the swarm is at its limit of {max} connected workers")]
pub struct SwarmFull {
    /// The limit.
    pub max: usize,
}

/// A worker backed by an engine in this process.
#[derive(Debug)]
pub struct LocalWorker {
    id: String,
    name: String,
    engine: Arc<dyn Engine>,
    tokens_per_s: f64,
}

impl LocalWorker {
    /// Wraps `engine`; `tokens_per_s` is its measured generation speed.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        engine: Arc<dyn Engine>,
        tokens_per_s: f64,
    ) -> Self {
        Self { id: id.into(), name: name.into(), engine, tokens_per_s }
    }
}

impl Worker for LocalWorker {
    fn id(&self) -> &str {
        &self.id
    }

    fn view(&self, now_ms: u64) -> WorkerView {
        let info = self.engine.info();
        let health = self.engine.health();
        WorkerView {
            id: self.id.clone(),
            name: self.name.clone(),
            models: vec![info.model.clone()],
            tokens_per_s: self.tokens_per_s,
            queue_depth: health.in_flight as u32,
            queue_capacity: info.capacity() as u32,
            paused: false,
            last_seen_ms: if health.alive { now_ms } else { 0 },
            slots: info.slots.max(1) as u32,
            stream_speeds: self.engine.stream_speeds(),
        }
    }

    fn submit(&self, req: ValidRequest) -> Result<TokenStream, EngineError> {
        self.engine.submit(req)
    }

    fn embed(&self, req: EmbedRequest) -> Result<EmbedFuture, EngineError> {
        let reply = self.engine.embed(req)?;
        Ok(Box::pin(nova_engine::embeddings(reply)))
    }

    fn status(&self) -> Option<NodeStatus> {
        let v = self.view(0);
        Some(NodeStatus {
            name: v.name,
            models: v.models,
            tokens_per_s: v.tokens_per_s,
            queue_depth: v.queue_depth,
            queue_capacity: v.queue_capacity,
            paused: v.paused,
            free_ram_mb: None,
            cores: std::thread::available_parallelism().ok().map(|n| n.get() as u32),
            battery_pct: None,
            charging: None,
            temperature_c: None,
            version: env!("CARGO_PKG_VERSION").into(),
            knowledge: None,
            slots: Some(engine_slots(self.engine.as_ref())),
            pool_offer_mb: None,
        })
    }
}

/// What a node says of its engine's sequences in its status.
pub(crate) fn engine_slots(engine: &dyn Engine) -> Slots {
    let info = engine.info();
    Slots {
        total: info.slots.max(1) as u32,
        running: engine.health().running as u32,
        stream_speeds: engine.stream_speeds(),
        kv_cache_mib: info.kv_cache_bytes.map(|b| b.div_ceil(1 << 20)),
    }
    .bounded()
}
