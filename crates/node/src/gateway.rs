//! The gateway: admission, worker selection, dispatch and bookkeeping.
//!
//! Topology: `run` queues a job (bounded FIFO with a deadline), admits it (bounded semaphore),
//! starts it on workers (`gateway/dispatch.rs`), and only then spawns one orchestration task
//! per job; the strategies in `gateway/` combine the answers. The worker list, the dispatch
//! lock and the win rates sit behind short std mutexes that are never held across `.await`,
//! and no critical section does work that grows with a client's input.

mod attempt;
mod auto;
mod council;
mod dispatch;
mod embed;
mod ensemble;
mod race;
mod retrieve;
mod round;

use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use dispatch::{Started, Tried};
use futures_util::future::BoxFuture;
use nova_api::{InferError, Inference, Job, JobEvent, JobEvents, JobResult};
use nova_proto::Strategy;
use nova_router::{select, ClusterView, WinRates};
use nova_store::{RequestRecord, Store};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};

use crate::{metrics::Metrics, now_ms, SwarmFull, Worker};

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Jobs running at once; more wait in the queue.
    pub max_in_flight: usize,
    /// Jobs waiting for a worker (or for a running slot) at once; more get 429 at once.
    pub max_queued: usize,
    /// Longest a job waits in the queue before it gets 429 (never longer than its deadline).
    pub queue_wait: Duration,
    /// A worker silent for longer is stale and gets no work.
    pub stale_after: Duration,
    /// Half-life of tag win rates.
    pub win_rate_half_life: Duration,
    /// Exploration weight of tag routing (0 = pure exploitation).
    pub exploration: f64,
    /// Extra workers tried after failures, per job.
    pub max_retries: usize,
    /// A departed worker is dropped from the list (and the swarm view) this long after it left.
    pub forget_after: Duration,
    /// Longest a grounded request waits for a node's passages; slower nodes are skipped.
    pub retrieval_timeout: Duration,
    /// Passages retrieved for a grounded request (the model's window may take fewer). One by
    /// default: on the document-QA set a 135M model answered 68 % of questions from the best
    /// passage alone, 48 % from two and 35 % from four, since it takes its answer from a
    /// look-alike passage as readily as from the right one (BENCHMARKS.md, "Knowledge").
    pub rag_k: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 64,
            max_queued: 256,
            queue_wait: Duration::from_secs(30),
            stale_after: Duration::from_secs(30),
            win_rate_half_life: Duration::from_secs(24 * 3600),
            exploration: 0.3,
            max_retries: 2,
            forget_after: Duration::from_secs(600),
            retrieval_timeout: Duration::from_secs(2),
            rag_k: 1,
        }
    }
}

pub(crate) struct Inner {
    config: GatewayConfig,
    workers: Mutex<Vec<Arc<dyn Worker>>>,
    rates: Mutex<WinRates>,
    admission: Arc<Semaphore>,
    /// Held while choosing workers and submitting to them (see `dispatch`).
    dispatch: Mutex<()>,
    /// Cancelled when the node shuts down: running jobs end with a `shutdown` error (an error
    /// event for a stream), new ones are refused.
    stopping: tokio_util::sync::CancellationToken,
    /// Woken when a slot may have freed up: a job ended, a worker joined or reported.
    capacity: Notify,
    /// The FIFO queue of jobs waiting to start: tokio's mutex hands itself over in order.
    queue: tokio::sync::Mutex<()>,
    /// Jobs in the queue now, bounded by `max_queued`.
    waiting: AtomicUsize,
    pub(crate) metrics: Metrics,
    store: Option<Store>,
    seed: AtomicU64,
    refused: Mutex<Option<Arc<AtomicU64>>>,
    /// What `auto` has learned: how much sampled answers agree, per tag.
    agreement: Mutex<auto::Agreement>,
    /// This node's own shared documents, by the node's name.
    knowledge: Mutex<Option<(String, Arc<dyn crate::KnowledgeBase>)>>,
    /// Retrievals running at once, bounded like jobs (they run before admission).
    retrievals: Arc<Semaphore>,
}

/// Routes jobs over its workers. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Poisoning only means a panic elsewhere; the data (a list, counters) is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Gateway {
    /// A gateway with no workers yet. With a store, win rates are loaded from and saved to it
    /// and every request is logged.
    pub async fn new(config: GatewayConfig, store: Option<Store>) -> Self {
        let mut rates =
            WinRates::new(config.win_rate_half_life.as_millis() as u64, config.exploration);
        if let Some(s) = &store {
            match s.win_rates().await {
                Ok(records) => rates.restore(records),
                Err(e) => tracing::warn!(error = %e, "cannot load win rates; starting fresh"),
            }
        }
        let config_in_flight = config.max_in_flight.max(1);
        Self {
            inner: Arc::new(Inner {
                admission: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
                dispatch: Mutex::new(()),
                capacity: Notify::new(),
                queue: tokio::sync::Mutex::new(()),
                waiting: AtomicUsize::new(0),
                config,
                workers: Mutex::new(Vec::new()),
                rates: Mutex::new(rates),
                metrics: Metrics::default(),
                store,
                seed: AtomicU64::new(now_ms()),
                stopping: tokio_util::sync::CancellationToken::new(),
                refused: Mutex::new(None),
                agreement: Mutex::new(auto::Agreement::default()),
                knowledge: Mutex::new(None),
                retrievals: Arc::new(Semaphore::new(config_in_flight)),
            }),
        }
    }

    /// Adds (or replaces, by id) a worker.
    pub fn add_worker(&self, w: Arc<dyn Worker>) {
        let mut ws = lock(&self.inner.workers);
        ws.retain(|x| x.id() != w.id());
        ws.push(w);
        drop(ws);
        self.inner.capacity.notify_waiters();
    }

    /// Adds (or replaces, by id) a worker unless `max` connected workers (departed ones do not
    /// count) are listed already. Checked under the same lock as the insert, so concurrent
    /// joins cannot overshoot.
    pub fn add_worker_bounded(&self, w: Arc<dyn Worker>, max: usize) -> Result<(), SwarmFull> {
        let mut ws = lock(&self.inner.workers);
        let live = ws.iter().filter(|x| x.id() != w.id() && x.departure().is_none()).count();
        if live >= max {
            return Err(SwarmFull { max });
        }
        ws.retain(|x| x.id() != w.id());
        ws.push(w);
        drop(ws);
        self.inner.capacity.notify_waiters();
        Ok(())
    }

    /// Shares this node's own documents (`--share-knowledge` on the gateway's node) under
    /// `name`, next to those of the workers that share theirs.
    pub fn set_knowledge(&self, name: impl Into<String>, kb: Arc<dyn crate::KnowledgeBase>) {
        *lock(&self.inner.knowledge) = Some((name.into(), kb));
    }

    /// Every registered worker, connected or departed.
    pub fn members(&self) -> Vec<Arc<dyn Worker>> {
        lock(&self.inner.workers).clone()
    }

    /// Removes a worker.
    pub fn remove_worker(&self, id: &str) {
        lock(&self.inner.workers).retain(|x| x.id() != id);
    }

    /// Drops workers that left at least `forget_after` (the config's) before `now_ms`; returns
    /// how many. Connected workers, stale or not, stay.
    pub fn forget_departed(&self, now_ms: u64) -> usize {
        let after = self.inner.config.forget_after.as_millis() as u64;
        let mut ws = lock(&self.inner.workers);
        let before = ws.len();
        ws.retain(|w| w.departure().is_none_or(|d| now_ms.saturating_sub(d.left_at_ms) < after));
        before - ws.len()
    }

    /// The cluster as the router sees it now.
    pub fn view(&self) -> ClusterView {
        self.inner.view()
    }

    /// Exposes the p2p layer's count of refused connections in the metrics.
    pub fn set_refused_counter(&self, counter: Arc<AtomicU64>) {
        *lock(&self.inner.refused) = Some(counter);
    }

    /// Persists a node's latest heartbeat in the registry (when there is a store). A heartbeat
    /// may report free slots, so waiting jobs look again.
    pub fn record_node(&self, rec: nova_store::NodeRecord) {
        self.inner.capacity.notify_waiters();
        if let Some(s) = &self.inner.store {
            if let Err(e) = s.upsert_node(rec) {
                tracing::warn!(error = %e, "heartbeat not stored");
            }
        }
    }

    /// Ends every running job with a `shutdown` error and refuses new ones, so that clients
    /// (a stream included) are told, rather than cut off, when the node stops.
    pub fn stop_jobs(&self) {
        self.inner.stopping.cancel();
    }

    /// Decayed win rate of `worker` for `tag`.
    pub fn win_rate(&self, worker: &str, tag: &str) -> f64 {
        lock(&self.inner.rates).rate(worker, tag, now_ms())
    }
}

impl Inner {
    fn view(&self) -> ClusterView {
        let now = now_ms();
        let workers = lock(&self.workers).iter().map(|w| w.view(now)).collect();
        ClusterView {
            workers,
            now_ms: now,
            stale_after_ms: self.config.stale_after.as_millis() as u64,
        }
    }

    /// Runs the router under the win-rate lock: selection is pure and costs O(tags × workers),
    /// so this beats cloning the whole table for every request.
    fn select(&self, view: &ClusterView, job: &Job, fanout: usize) -> nova_router::Selection {
        let seed = self.seed.fetch_add(1, Ordering::Relaxed);
        let rates = lock(&self.rates);
        select(view, job.model.as_deref(), fanout, bounded_tags(job), &rates, seed)
    }

    pub(crate) fn max_retries(&self) -> usize {
        self.config.max_retries
    }

    /// Replaces `auto` by the strategy it chooses for `job` (see `gateway/auto.rs`); says why.
    fn resolve_auto(&self, mut job: Job) -> (Job, Option<String>) {
        if job.strategy != Strategy::Auto {
            return (job, None);
        }
        let workers = self.view().eligible(job.model.as_deref()).len();
        let choice = lock(&self.agreement).decide(auto::tags(&job), workers, job.stream);
        let why = match choice {
            auto::Choice::Single { why } => {
                job.strategy = Strategy::Race;
                job.fanout = 1;
                why
            }
            auto::Choice::Vote { fanout, why } => {
                job.strategy = Strategy::Vote;
                job.fanout = fanout;
                let p = &mut job.request.params;
                if p.temperature < auto::VOTE_TEMPERATURE / 2.0 {
                    p.temperature = auto::VOTE_TEMPERATURE;
                    format!("{why} (samples at temperature {})", auto::VOTE_TEMPERATURE)
                } else {
                    why
                }
            }
        };
        (job, Some(why))
    }

    /// Feeds a vote's agreement to `auto`.
    pub(crate) fn learn_agreement(&self, job: &Job, vote: &nova_api::VoteSummary) {
        lock(&self.agreement).learn(auto::tags(job), vote);
    }

    fn record(&self, job: &Job, result: &Result<JobResult, InferError>, started: Instant) {
        let strategy = strategy_name(job.strategy);
        let latency = started.elapsed().as_secs_f64();
        let (outcome, ttft, tokens, winner) = match result {
            Ok(r) => ("ok", r.trace.ttft_ms, r.usage.completion_tokens, r.trace.winner.clone()),
            Err(e) => (e.kind(), None, 0, None),
        };
        let workers: Vec<(&str, u32)> = match result {
            Ok(r) => r.trace.attempts.iter().map(|a| (a.worker.as_str(), a.tokens)).collect(),
            Err(_) => Vec::new(),
        };
        self.metrics.request(crate::metrics::RequestRecord {
            strategy,
            outcome,
            latency_s: latency,
            ttft_s: ttft.map(|t| t / 1000.0),
            tokens,
            prompt_tokens: result.as_ref().map_or(0, |r| r.usage.prompt_tokens),
            workers: &workers,
        });
        let tags = bounded_tags(job);
        if let (Ok(r), false) = (result, tags.is_empty()) {
            let now = now_ms();
            // Bounded work under the lock: at most `MAX_TAGS` tags times the attempts of one
            // job; only the touched rows (and any evicted ones) go to the store.
            let (touched, evicted) = {
                let mut rates = lock(&self.rates);
                let mut evicted = Vec::new();
                // A council asks a worker once per stage: one trial per worker and job.
                let mut workers: Vec<&str> =
                    r.trace.attempts.iter().map(|a| a.worker.as_str()).collect();
                workers.sort_unstable();
                workers.dedup();
                for w in &workers {
                    for tag in tags {
                        let won = r.trace.winner.as_deref() == Some(*w);
                        evicted.extend(rates.record(w, tag, won, now));
                    }
                }
                let touched: Vec<_> = workers
                    .iter()
                    .flat_map(|w| tags.iter().filter_map(|t| rates.get(w, t)))
                    .collect();
                (touched, evicted)
            };
            if let Some(s) = &self.store {
                let saved = s.save_win_rates(touched).and_then(|()| {
                    if evicted.is_empty() {
                        Ok(())
                    } else {
                        s.delete_win_rates(evicted)
                    }
                });
                if let Err(e) = saved {
                    tracing::warn!(error = %e, "win rates not saved");
                }
            }
        }
        if let Some(s) = &self.store {
            let rec = RequestRecord {
                at_ms: now_ms(),
                strategy: strategy.into(),
                model: job.model.clone(),
                outcome: outcome.into(),
                latency_ms: latency * 1000.0,
                ttft_ms: ttft,
                tokens,
                winner,
            };
            if let Err(e) = s.log_request(rec) {
                tracing::warn!(error = %e, "request not logged");
            }
        }
    }

    /// Why a job for `model` cannot run now, when the only way to serve it is a pooled model
    /// that is not ready (waiting for devices, or loading): said at once, in the planner's
    /// words, rather than after the job waited in the queue.
    fn pool_not_ready(&self, model: Option<&str>) -> Option<String> {
        let model = model?;
        let view = self.view();
        let servable = view.workers.iter().any(|w| {
            matches!(view.check(w, Some(model)), Ok(()) | Err(nova_router::Ineligible::Busy))
        });
        if servable {
            return None;
        }
        let pool = lock(&self.workers)
            .iter()
            .filter_map(|w| w.pool())
            .find(|p| p.model == model && p.state != "ready")?;
        Some(match pool.detail {
            Some(why) => format!("model {model} is pooled across the swarm and not ready: {why}"),
            None => format!("model {model} is pooled across the swarm and still {}", pool.state),
        })
    }

    fn refuse(&self, job: &Job, err: InferError) -> InferError {
        self.metrics.request(crate::metrics::RequestRecord {
            strategy: strategy_name(job.strategy),
            outcome: err.kind(),
            latency_s: 0.0,
            ttft_s: None,
            tokens: 0,
            prompt_tokens: 0,
            workers: &[],
        });
        err
    }

    /// Refuses work once the gateway is stopping, and a model no worker serves.
    fn check_open(&self, model: Option<&String>) -> Result<(), InferError> {
        if self.stopping.is_cancelled() {
            return Err(InferError::Shutdown);
        }
        if let Some(m) = model {
            let view = self.view();
            if !view.workers.iter().any(|w| w.models.contains(m)) {
                let available = view.models().join(", ");
                return Err(InferError::UnknownModel { model: m.clone(), available });
            }
        }
        Ok(())
    }

    /// Queues, admits and starts `job` (see [`Inference::run`]).
    async fn admit(
        self: Arc<Self>,
        job: Job,
    ) -> Result<(OwnedSemaphorePermit, Vec<Started>, Tried), InferError> {
        self.check_open(job.model.as_ref())?;
        let until = tokio::time::Instant::now() + self.config.queue_wait.min(job.deadline);
        let _place = QueuePlace::enter(&self)?;
        let full = || InferError::Overloaded { retry_after_s: 1 };
        let _turn = tokio::time::timeout_at(until, self.queue.lock()).await.map_err(|_| full())?;
        let permit = tokio::time::timeout_at(until, self.admission.clone().acquire_owned())
            .await
            .map_err(|_| full())?
            .map_err(|_| InferError::Shutdown)?;
        let tried = Tried::default();
        let started = self.start(&job, &job.request, job.fanout.max(1), &tried, until).await?;
        Ok((permit, started, tried))
    }
}

/// A job's place in the gateway's queue: counted while it waits, so the queue stays bounded.
struct QueuePlace<'a>(&'a AtomicUsize);

impl<'a> QueuePlace<'a> {
    fn enter(inner: &'a Inner) -> Result<Self, InferError> {
        if inner.waiting.fetch_add(1, Ordering::SeqCst) >= inner.config.max_queued {
            inner.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(InferError::Overloaded { retry_after_s: 2 });
        }
        Ok(Self(&inner.waiting))
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The tags routing looks at. The API refuses more than [`nova_proto::Limits::max_tags`];
/// this bound keeps the gateway's work per job bounded whoever builds the job.
fn bounded_tags(job: &Job) -> &[String] {
    let max = nova_proto::Limits::default().max_tags;
    &job.tags[..job.tags.len().min(max)]
}

pub(crate) fn strategy_name(s: Strategy) -> &'static str {
    s.as_str()
}

impl Inference for Gateway {
    fn run(&self, job: Job) -> BoxFuture<'_, Result<JobEvents, InferError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut job = job;
            let grounding = match job.rag {
                true => Some(inner.ground(&mut job).await.map_err(|e| inner.refuse(&job, e))?),
                false => None,
            };
            if let Some(detail) = inner.pool_not_ready(job.model.as_deref()) {
                let e = InferError::NoCapacity { detail, retry_after_s: 5 };
                return Err(inner.refuse(&job, e));
            }
            let (job, auto) = inner.resolve_auto(job);
            let (permit, started, tried) =
                inner.clone().admit(job.clone()).await.map_err(|e| inner.refuse(&job, e))?;
            let (tx, mut rx) = mpsc::channel(64);
            let stream = job.stream;
            let annotate = Annotate { auto, grounding };
            tokio::spawn(orchestrate(inner, job, annotate, started, tried, tx, permit));
            if !stream {
                return Ok(JobEvents::new(rx));
            }
            // A stream commits the client to 200 and its first event; anything that fails
            // before a first token (a prompt no worker can take, every worker failing) is
            // still an error status.
            match rx.recv().await {
                Some(JobEvent::Error(e)) => Err(e),
                Some(first) => Ok(JobEvents::with_first(first, rx)),
                None => Err(InferError::Shutdown),
            }
        })
    }

    fn models(&self) -> Vec<String> {
        self.inner.view().models()
    }

    fn embed(
        &self,
        job: nova_api::EmbedJob,
    ) -> BoxFuture<'_, Result<nova_api::EmbedResult, InferError>> {
        Box::pin(self.inner.clone().embed(job))
    }

    fn swarm(&self) -> nova_proto::SwarmView {
        let view = self.inner.view();
        let workers = lock(&self.inner.workers).clone();
        let forget_after_ms = self.inner.config.forget_after.as_millis() as u64;
        crate::swarm_view::build(&view, &workers, forget_after_ms)
    }

    fn metrics(&self) -> String {
        let mut out = self.inner.metrics.render(&nova_api::Inference::swarm(self));
        if let Some(c) = lock(&self.inner.refused).as_ref() {
            out.push_str("# HELP nova_p2p_refused_connections_total Connections refused: wrong swarm secret or not a nova node.\n");
            out.push_str("# TYPE nova_p2p_refused_connections_total counter\n");
            out.push_str(&format!(
                "nova_p2p_refused_connections_total {}\n",
                c.load(Ordering::Relaxed)
            ));
        }
        out
    }
}

/// What the gateway adds to a finished answer beyond the strategy's own trace.
struct Annotate {
    /// Why `auto` chose the strategy.
    auto: Option<String>,
    /// The passages a grounded request was given.
    grounding: Option<retrieve::Grounding>,
}

async fn orchestrate(
    inner: Arc<Inner>,
    job: Job,
    annotate: Annotate,
    started: Vec<Started>,
    tried: Tried,
    tx: mpsc::Sender<JobEvent>,
    _permit: OwnedSemaphorePermit,
) {
    let t0 = Instant::now();
    let deadline = job.deadline;
    let work = async {
        let req = &job.request;
        let mut r = match (job.strategy, job.stream) {
            // `resolve_auto` has replaced `Auto` by what it chose.
            (Strategy::Race | Strategy::Auto, true) => {
                race::streamed(&inner, &job, req, started, tried, &tx, t0).await
            }
            (Strategy::Race | Strategy::Auto, false) => {
                race::whole(&inner, &job, req, started, tried, t0).await
            }
            (Strategy::BestOfN, _) => ensemble::run(&inner, &job, started, tried, t0, false).await,
            (Strategy::Vote, _) => ensemble::run(&inner, &job, started, tried, t0, true).await,
            (Strategy::Council, _) => council::run(&inner, &job, started, tried, &tx, t0).await,
        };
        if let Ok(r) = &mut r {
            r.trace.auto = annotate.auto;
            if let Some(g) = annotate.grounding {
                g.annotate(r);
            }
        }
        r
    };
    let result = tokio::select! {
        // The client went away: dropping `work` drops every worker stream, cancelling them.
        _ = tx.closed() => {
            inner.metrics.request(crate::metrics::RequestRecord {
                strategy: strategy_name(job.strategy),
                outcome: "cancelled",
                latency_s: t0.elapsed().as_secs_f64(),
                ttft_s: None,
                tokens: 0,
                prompt_tokens: 0,
                workers: &[],
            });
            inner.capacity.notify_waiters();
            return;
        }
        r = tokio::time::timeout(deadline, work) => {
            r.unwrap_or(Err(InferError::Timeout { seconds: deadline.as_secs() }))
        }
        // The node is stopping: dropping `work` cancels the workers' generations.
        () = inner.stopping.cancelled() => Err(InferError::Shutdown),
    };
    inner.capacity.notify_waiters();
    inner.record(&job, &result, t0);
    let event = match result {
        Ok(r) => JobEvent::Done(Box::new(r)),
        Err(e) => JobEvent::Error(e),
    };
    let _ = tx.send(event).await;
}
