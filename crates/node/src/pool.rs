//! A model pooled across devices (`nova serve --pool`): the gateway is the head (embeddings,
//! output and the first layers) and workers that offer memory hold the following layers over
//! ggml-rpc, tunnelled through the swarm's own streams.
//!
//! [`PooledWorker`] is an ordinary [`Worker`] to the router. Behind it, [`run`] keeps the pool
//! planned: while it is not ready it plans from the workers' current offers every few seconds,
//! loads the split model when the plan fits, and tears it down (then plans again without that
//! device) when a shard is lost, pauses, or leaves. Requests for the model while it waits are
//! refused at once with the planner's reason.

use std::{
    io,
    os::fd::OwnedFd,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use nova_engine::{Engine, EngineError, LlamaConfig, TokenStream};
use nova_p2p::{Control, PeerId};
use nova_proto::{PoolHolder, PoolView, ValidRequest};
use nova_router::{split, WorkerView};
use tokio_util::{compat::FuturesAsyncReadCompatExt as _, sync::CancellationToken};

use crate::{Gateway, Worker};

/// Settings of a pooled model.
#[derive(Debug, Clone)]
pub struct PoolSpec {
    /// Its name, as requests give it.
    pub model: String,
    /// The GGUF file (the head needs it whole: it sends each shard its layers).
    pub path: PathBuf,
    /// Most memory the head itself gives the model, in MiB (`--max-ram`); half of what is free
    /// caps it too.
    pub max_ram_mb: u64,
    /// The context window.
    pub n_ctx: u32,
    /// Threads on the head.
    pub threads: Option<u32>,
    /// A shard that does not answer within this is lost.
    pub reply_timeout: Duration,
    /// How often a waiting pool plans again.
    pub replan_every: Duration,
    /// The head's name in the swarm view.
    pub head_name: String,
}

/// Compute buffers and the like on the head, beyond weights and KV cache.
const HEAD_OVERHEAD: u64 = 48 << 20;
/// The least set aside on each shard for the same.
const SHARD_OVERHEAD: u64 = 16 << 20;
/// Tokens in one batch of the pooled engine (its `n_ubatch`): a shard's compute buffer holds
/// this many tokens' activations.
const POOL_UBATCH: u64 = 512;

/// What a shard needs beyond weights and KV cache: its compute buffer, from the model's widths
/// (Gemma 3 270M's is 16.5 MiB at 512 tokens a batch, estimated at 20; SmolLM2's fits in 16).
fn shard_overhead(sizes: &nova_model::gguf::LayerSizes) -> u64 {
    SHARD_OVERHEAD.max(sizes.activation_bytes_per_token.saturating_mul(POOL_UBATCH))
}

#[derive(Debug)]
enum State {
    Waiting { why: String },
    Loading { plan: split::SplitPlan },
    Ready { engine: Arc<dyn Engine>, tokens_per_s: f64, plan: split::SplitPlan, shards: Vec<Shard> },
}

#[derive(Debug, Clone)]
struct Shard {
    id: String,
    link: Arc<nova_rpc::Link>,
}

/// The pooled model as a worker of its gateway.
#[derive(Debug)]
pub struct PooledWorker {
    id: String,
    spec: PoolSpec,
    n_layer: u32,
    state: Mutex<State>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PooledWorker {
    /// A pool for `spec`, waiting for its first plan. Reads the model's layer table now, so a
    /// missing or corrupt file fails at start.
    pub fn new(spec: PoolSpec) -> Result<Self, String> {
        let sizes = nova_model::gguf::layer_sizes(&spec.path).map_err(|e| e.to_string())?;
        Ok(Self {
            id: format!("pool-{}", spec.model),
            n_layer: sizes.layers.len() as u32,
            spec,
            state: Mutex::new(State::Waiting { why: "planning".into() }),
        })
    }

    /// Why it cannot answer now, if it cannot.
    pub fn unavailable(&self) -> Option<String> {
        match &*lock(&self.state) {
            State::Ready { .. } => None,
            State::Waiting { why } => Some(format!(
                "model {} is pooled across the swarm and not ready: {why}",
                self.spec.model
            )),
            State::Loading { .. } => Some(format!(
                "model {} is pooled across the swarm and still loading",
                self.spec.model
            )),
        }
    }
}

impl Worker for PooledWorker {
    fn id(&self) -> &str {
        &self.id
    }

    fn view(&self, now_ms: u64) -> WorkerView {
        let mut view = WorkerView {
            id: self.id.clone(),
            name: format!("pool: {}", self.spec.model),
            models: vec![self.spec.model.clone()],
            tokens_per_s: 0.0,
            queue_depth: 0,
            queue_capacity: 1,
            // Not ready: never routed to (requests naming the model are refused with the
            // reason before routing).
            paused: true,
            last_seen_ms: now_ms,
            slots: 1,
            stream_speeds: vec![],
        };
        if let State::Ready { engine, tokens_per_s, .. } = &*lock(&self.state) {
            let health = engine.health();
            view.paused = !health.alive;
            view.tokens_per_s = *tokens_per_s;
            view.queue_depth = health.in_flight as u32;
            view.queue_capacity = engine.info().capacity() as u32;
            view.slots = engine.info().slots.max(1) as u32;
        }
        view
    }

    fn submit(&self, req: ValidRequest) -> Result<TokenStream, EngineError> {
        let engine = match &*lock(&self.state) {
            State::Ready { engine, .. } => engine.clone(),
            _ => return Err(EngineError::Unavailable(self.unavailable().unwrap_or_default())),
        };
        engine.submit(req)
    }

    fn pool(&self) -> Option<PoolView> {
        let state = lock(&self.state);
        let (name, detail, plan, links) = match &*state {
            State::Waiting { why } => ("waiting", Some(why.clone()), None, &[][..]),
            State::Loading { plan } => ("loading", None, Some(plan), &[][..]),
            State::Ready { plan, shards, .. } => ("ready", None, Some(plan), &shards[..]),
        };
        let traffic = |id: &str| {
            links.iter().find(|s| s.id == id).map(|s| {
                let t = s.link.traffic();
                nova_proto::ShardTraffic {
                    round_trips: t.round_trips,
                    bytes_to_shard: t.bytes_to_shard,
                    bytes_from_shard: t.bytes_from_shard,
                }
            })
        };
        let mut holders = Vec::new();
        if let Some(plan) = plan {
            holders.push(PoolHolder {
                id: "head".into(),
                name: self.spec.head_name.clone(),
                first_layer: 0,
                layers: plan.head_layers,
                head: true,
                traffic: None,
            });
            holders.extend(plan.shards.iter().map(|s| PoolHolder {
                id: s.id.clone(),
                name: s.name.clone(),
                first_layer: s.first_layer,
                layers: s.layers,
                head: false,
                traffic: traffic(&s.id),
            }));
        }
        Some(PoolView {
            model: self.spec.model.clone(),
            state: name.into(),
            detail,
            layers: self.n_layer,
            holders,
        })
    }
}

/// The route of one shard's connections: a new [`nova_p2p::GGML_RPC`] stream each.
struct Tunnel {
    link: Arc<nova_rpc::Link>,
    control: Mutex<Control>,
    peer: PeerId,
    rt: tokio::runtime::Handle,
}

impl nova_rpc::Route for Tunnel {
    fn connect(&self) -> io::Result<OwnedFd> {
        let mut control = lock(&self.control).clone();
        let peer = self.peer;
        self.link.bridge(&self.rt, move || async move {
            let stream = control
                .open_stream(peer, nova_p2p::GGML_RPC)
                .await
                .map_err(|e| io::Error::other(format!("cannot open a stream to it: {e}")))?;
            Ok(stream.compat())
        })
    }
}

/// A worker that may hold layers now.
struct Offer {
    peer: PeerId,
    view: WorkerView,
    offer_mb: u64,
}

fn offers(gateway: &Gateway) -> Vec<Offer> {
    let cluster = gateway.view();
    gateway
        .members()
        .iter()
        .filter(|w| w.departure().is_none())
        .filter_map(|w| {
            let peer = w.peer()?;
            let offer_mb = w.status()?.pool_offer_mb.filter(|&mb| mb > 0)?;
            let view = cluster.workers.iter().find(|v| v.id == w.id())?.clone();
            let fresh = cluster.now_ms.saturating_sub(view.last_seen_ms) <= cluster.stale_after_ms;
            (fresh && !view.paused).then_some(Offer { peer, view, offer_mb })
        })
        .collect()
}

fn head_offer_mb(spec: &PoolSpec) -> u64 {
    let free = crate::serve_tasks::mem_available_mb().map_or(spec.max_ram_mb, |f| f / 2);
    spec.max_ram_mb.min(free)
}

/// Keeps `pool` planned and loaded until `stop`. Endpoint names carry a generation number:
/// ggml-rpc keeps state per name for the life of the process, so a new plan uses new names.
pub(crate) async fn run(
    pool: Arc<PooledWorker>,
    gateway: Gateway,
    control: Control,
    stop: CancellationToken,
) {
    let sizes = match nova_model::gguf::layer_sizes(&pool.spec.path) {
        Ok(s) => s,
        Err(e) => {
            *lock(&pool.state) = State::Waiting { why: format!("cannot read the model: {e}") };
            return;
        }
    };
    let needs = split::SplitNeeds {
        layers: sizes.layers.clone(),
        other: sizes.other,
        kv_per_layer: sizes.kv_bytes_per_token_per_layer * u64::from(pool.spec.n_ctx),
        head_overhead: HEAD_OVERHEAD,
        shard_overhead: shard_overhead(&sizes),
    };
    let mut generation = 0u64;
    let mut failed = None;
    loop {
        if !ensure_healthy(&pool, &gateway) {
            generation += 1;
            plan_and_load(&pool, &gateway, &control, &needs, generation, &mut failed).await;
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(pool.spec.replan_every) => {}
        }
    }
    *lock(&pool.state) = State::Waiting { why: "the gateway is stopping".into() };
}

/// True while the loaded pool can answer; otherwise tears it down, saying why.
fn ensure_healthy(pool: &PooledWorker, gateway: &Gateway) -> bool {
    // Read before taking the pool's lock: the gateway's view asks the pool itself.
    let live = offers(gateway);
    let mut state = lock(&pool.state);
    let State::Ready { engine, shards, .. } = &*state else {
        return false;
    };
    let why = if let Some((s, lost)) = shards.iter().find_map(|s| s.link.lost().map(|w| (s, w))) {
        Some(format!("shard {} was lost ({lost}); planning again without it", s.id))
    } else if let Some(s) = shards.iter().find(|s| !live.iter().any(|o| o.view.id == s.id)) {
        // Paused by its guard, gone, stale, or it stopped offering memory. Marking its link
        // lost ends the answers in progress at their next token with this reason.
        s.link.mark_lost("it can no longer hold layers: paused by its device guard, gone, or no longer offering memory");
        Some(format!("shard {} can no longer hold layers; planning again without it", s.id))
    } else if !engine.health().alive {
        Some("the split model stopped; planning again".into())
    } else {
        None
    };
    match why {
        None => true,
        Some(why) => {
            tracing::warn!(model = %pool.spec.model, %why, "pool down");
            // Dropping the engine ends its requests with an error and frees the shards' buffers;
            // it joins the engine's thread, which may wait on a shard up to its timeout, so not
            // here on the runtime.
            let old = std::mem::replace(&mut *state, State::Waiting { why });
            drop(state);
            tokio::task::spawn_blocking(move || drop(old));
            false
        }
    }
}

/// A plan that did not load, and when the same plan may be tried again. A load uploads every
/// shard's weights, so a plan that fails (a shard short of memory, say) is not retried every
/// few seconds; a different plan (a device came or went) is tried at once.
struct Failed {
    plan: split::SplitPlan,
    why: String,
    retry_at: Instant,
    wait: Duration,
}

/// The wait after a plan first fails to load; it doubles with each failure of the same plan.
const FIRST_RETRY_WAIT: Duration = Duration::from_secs(5);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(120);

async fn plan_and_load(
    pool: &Arc<PooledWorker>,
    gateway: &Gateway,
    control: &Control,
    needs: &split::SplitNeeds,
    generation: u64,
    failed: &mut Option<Failed>,
) {
    let live = offers(gateway);
    let candidates: Vec<split::Candidate> = live
        .iter()
        .map(|o| split::Candidate {
            id: o.view.id.clone(),
            name: o.view.name.clone(),
            offer_mb: o.offer_mb,
            tokens_per_s: o.view.tokens_per_s,
            paused: o.view.paused,
        })
        .collect();
    let plan =
        match split::plan(needs, head_offer_mb(&pool.spec), &candidates, nova_rpc::MAX_SHARDS) {
            Ok(p) => p,
            Err(refusal) => {
                let why = refusal.to_string();
                let mut state = lock(&pool.state);
                if !matches!(&*state, State::Waiting { why: w } if *w == why) {
                    tracing::info!(model = %pool.spec.model, %why, "pool waiting");
                }
                *state = State::Waiting { why };
                return;
            }
        };
    if let Some(f) = failed.as_ref().filter(|f| f.plan == plan) {
        let left = f.retry_at.saturating_duration_since(Instant::now());
        if !left.is_zero() {
            let why = format!("{}; trying again in {} s", f.why, left.as_secs().max(1));
            *lock(&pool.state) = State::Waiting { why };
            return;
        }
    }
    *lock(&pool.state) = State::Loading { plan: plan.clone() };
    let rt = tokio::runtime::Handle::current();
    let mut shards = Vec::new();
    let mut rpc_shards = Vec::new();
    for (i, s) in plan.shards.iter().enumerate() {
        let Some(offer) = live.iter().find(|o| o.view.id == s.id) else { continue };
        let endpoint = format!("nova-g{generation}-{i}:0");
        let link = nova_rpc::Link::new(
            format!("{} ({})", s.name, s.id),
            nova_rpc::wire::FrameLimits::default(),
            pool.spec.reply_timeout,
        );
        nova_rpc::add_route(
            &endpoint,
            Arc::new(Tunnel {
                link: link.clone(),
                control: Mutex::new(control.clone()),
                peer: offer.peer,
                rt: rt.clone(),
            }),
        );
        shards.push(Shard { id: s.id.clone(), link: link.clone() });
        rpc_shards.push(nova_rpc::Shard { endpoint, layers: s.layers, link });
    }
    tracing::info!(model = %pool.spec.model, head_layers = plan.head_layers, shards = shards.len(), "loading the pooled model");
    let mut config = LlamaConfig::new(&pool.spec.path, &pool.spec.model)
        .with_threads(pool.spec.threads)
        .with_n_ctx(pool.spec.n_ctx)
        .with_parallel(Some(1))
        .with_shards(rpc_shards);
    config.n_batch = POOL_UBATCH as u32;
    // Each shard's offer was planned for this one context: the separate bench context that
    // `local_engine` measures a whole model with would not fit there. The speed comes from a
    // short answer through the engine's own context instead.
    let loaded =
        match tokio::task::spawn_blocking(move || nova_engine::LlamaEngine::load(config)).await {
            Ok(Ok(engine)) => {
                let engine: Arc<dyn nova_engine::Engine> = Arc::new(engine);
                crate::local_engine::load(crate::EngineSpec::Ready(engine, None)).await
            }
            Ok(Err(e)) => Err(crate::SpawnError::Engine(e.to_string())),
            Err(e) => Err(crate::SpawnError::Engine(format!("the loader thread failed: {e}"))),
        };
    let lost = shards.iter().find_map(|s| s.link.lost().map(|w| format!("shard {}: {w}", s.id)));
    let why = match (loaded, lost) {
        (Ok(local), None) => {
            tracing::info!(model = %pool.spec.model, tokens_per_s = local.tokens_per_s, "pooled model ready");
            *failed = None;
            *lock(&pool.state) = State::Ready {
                engine: local.engine,
                tokens_per_s: local.tokens_per_s,
                plan,
                shards,
            };
            return;
        }
        (Ok(local), Some(l)) => {
            // Dropping the engine joins its thread: not on the runtime.
            tokio::task::spawn_blocking(move || drop(local));
            format!("a shard was lost while loading ({l})")
        }
        (Err(_), Some(l)) => format!("a shard was lost while loading ({l})"),
        (Err(e), None) => e.to_string(),
    };
    tracing::warn!(model = %pool.spec.model, %why, "the pooled model did not load");
    let wait = match failed.take() {
        Some(f) if f.plan == plan => (f.wait * 2).min(MAX_RETRY_WAIT),
        _ => FIRST_RETRY_WAIT,
    };
    *failed = Some(Failed { plan, why: why.clone(), retry_at: Instant::now() + wait, wait });
    *lock(&pool.state) = State::Waiting { why };
}
