//! The gateway: admission, worker selection, dispatch and bookkeeping.
//!
//! Topology: `run` admits a job (bounded semaphore), checks that some worker can take it, and
//! spawns one orchestration task per job; the strategies in `gateway/` do the dispatching. The
//! worker list and win rates sit behind short std mutexes that are never held across `.await`.

mod attempt;
mod best_of_n;
mod race;

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use nova_api::{InferError, Inference, Job, JobEvent, JobResult};
use nova_router::{select, ClusterView, Ineligible, Strategy, WinRates};
use nova_store::{RequestRecord, Store};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::{metrics::Metrics, now_ms, SwarmFull, Worker};

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Jobs running at once; more are refused with 429.
    pub max_in_flight: usize,
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
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 64,
            stale_after: Duration::from_secs(30),
            win_rate_half_life: Duration::from_secs(24 * 3600),
            exploration: 0.3,
            max_retries: 2,
            forget_after: Duration::from_secs(600),
        }
    }
}

pub(crate) struct Inner {
    config: GatewayConfig,
    workers: Mutex<Vec<Arc<dyn Worker>>>,
    rates: Mutex<WinRates>,
    admission: Arc<Semaphore>,
    pub(crate) metrics: Metrics,
    store: Option<Store>,
    seed: AtomicU64,
    refused: Mutex<Option<Arc<AtomicU64>>>,
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
        Self {
            inner: Arc::new(Inner {
                admission: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
                config,
                workers: Mutex::new(Vec::new()),
                rates: Mutex::new(rates),
                metrics: Metrics::default(),
                store,
                seed: AtomicU64::new(now_ms()),
                refused: Mutex::new(None),
            }),
        }
    }

    /// Adds (or replaces, by id) a worker.
    pub fn add_worker(&self, w: Arc<dyn Worker>) {
        let mut ws = lock(&self.inner.workers);
        ws.retain(|x| x.id() != w.id());
        ws.push(w);
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
        Ok(())
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

    /// Persists a node's latest heartbeat in the registry (when there is a store).
    pub fn record_node(&self, rec: nova_store::NodeRecord) {
        if let Some(s) = &self.inner.store {
            if let Err(e) = s.upsert_node(rec) {
                tracing::warn!(error = %e, "heartbeat not stored");
            }
        }
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

    pub(crate) fn worker(&self, id: &str) -> Option<Arc<dyn Worker>> {
        lock(&self.workers).iter().find(|w| w.id() == id).cloned()
    }

    /// Another eligible worker for `job` that has not been tried, for a retry.
    pub(crate) fn replacement(
        &self,
        job: &Job,
        tried: &HashSet<String>,
    ) -> Option<Arc<dyn Worker>> {
        let view = self.view();
        let sel = self.select(&view, job, view.workers.len());
        sel.workers.iter().find(|id| !tried.contains(*id)).and_then(|id| self.worker(id))
    }

    /// Runs the router under the win-rate lock: selection is pure and quick, so this beats
    /// cloning the whole table for every request.
    fn select(&self, view: &ClusterView, job: &Job, fanout: usize) -> nova_router::Selection {
        let seed = self.seed.fetch_add(1, Ordering::Relaxed);
        let rates = lock(&self.rates);
        select(view, job.model.as_deref(), fanout, &job.tags, &rates, seed)
    }

    pub(crate) fn max_retries(&self) -> usize {
        self.config.max_retries
    }

    fn record(&self, job: &Job, result: &Result<JobResult, InferError>, started: Instant) {
        let strategy = strategy_name(job.strategy);
        let latency = started.elapsed().as_secs_f64();
        let (outcome, ttft, tokens, winner) = match result {
            Ok(r) => ("ok", r.trace.ttft_ms, r.usage.completion_tokens, r.trace.winner.clone()),
            Err(e) => (e.kind(), None, 0, None),
        };
        self.metrics.request(strategy, outcome, latency, ttft.map(|t| t / 1000.0), tokens);
        if let (Ok(r), false) = (result, job.tags.is_empty()) {
            let now = now_ms();
            let mut rates = lock(&self.rates);
            for a in &r.trace.attempts {
                for tag in &job.tags {
                    rates.record(&a.worker, tag, r.trace.winner.as_deref() == Some(&a.worker), now);
                }
            }
            if let Some(s) = &self.store {
                let mine: Vec<_> =
                    rates.records().into_iter().filter(|rec| job.tags.contains(&rec.tag)).collect();
                if let Err(e) = s.save_win_rates(mine) {
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
}

pub(crate) fn strategy_name(s: Strategy) -> &'static str {
    match s {
        Strategy::Race => "race",
        Strategy::BestOfN => "best_of_n",
    }
}

fn describe_no_capacity(view: &ClusterView, model: Option<&str>) -> String {
    let (mut stale, mut paused, mut busy) = (0, 0, 0);
    for w in &view.workers {
        match view.check(w, model) {
            Err(Ineligible::Stale) => stale += 1,
            Err(Ineligible::Paused) => paused += 1,
            Err(Ineligible::Busy) => busy += 1,
            _ => {}
        }
    }
    if view.workers.is_empty() {
        "no workers have joined".into()
    } else {
        format!("{stale} stale, {paused} paused, {busy} busy")
    }
}

impl Inference for Gateway {
    fn run(&self, job: Job) -> Result<mpsc::Receiver<JobEvent>, InferError> {
        let inner = &self.inner;
        let Ok(permit) = inner.admission.clone().try_acquire_owned() else {
            let err = InferError::Overloaded { retry_after_s: 1 };
            inner.metrics.request(strategy_name(job.strategy), err.kind(), 0.0, None, 0);
            return Err(err);
        };
        let view = inner.view();
        if let Some(m) = &job.model {
            if !view.workers.iter().any(|w| w.models.contains(m)) {
                let err = InferError::UnknownModel {
                    model: m.clone(),
                    available: view.models().join(", "),
                };
                inner.metrics.request(strategy_name(job.strategy), err.kind(), 0.0, None, 0);
                return Err(err);
            }
        }
        let sel = inner.select(&view, &job, job.fanout.max(1));
        if sel.workers.is_empty() {
            let err = InferError::NoCapacity {
                detail: describe_no_capacity(&view, job.model.as_deref()),
            };
            inner.metrics.request(strategy_name(job.strategy), err.kind(), 0.0, None, 0);
            return Err(err);
        }
        let workers: Vec<Arc<dyn Worker>> =
            sel.workers.iter().filter_map(|id| inner.worker(id)).collect();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(orchestrate(self.inner.clone(), job, workers, tx, permit));
        Ok(rx)
    }

    fn models(&self) -> Vec<String> {
        self.inner.view().models()
    }

    fn swarm(&self) -> nova_proto::SwarmView {
        let view = self.inner.view();
        let workers = lock(&self.inner.workers).clone();
        let forget_after_ms = self.inner.config.forget_after.as_millis() as u64;
        crate::swarm_view::build(&view, &workers, forget_after_ms)
    }

    fn metrics(&self) -> String {
        let mut out = self.inner.metrics.render(&self.inner.view());
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

async fn orchestrate(
    inner: Arc<Inner>,
    job: Job,
    workers: Vec<Arc<dyn Worker>>,
    tx: mpsc::Sender<JobEvent>,
    _permit: OwnedSemaphorePermit,
) {
    let started = Instant::now();
    let deadline = job.deadline;
    let work = async {
        match (job.strategy, job.stream) {
            (Strategy::Race, true) => race::streamed(&inner, &job, workers, &tx, started).await,
            (Strategy::Race, false) => race::whole(&inner, &job, workers, started).await,
            (Strategy::BestOfN, _) => best_of_n::run(&inner, &job, workers, started).await,
        }
    };
    let result = tokio::select! {
        // The client went away: dropping `work` drops every worker stream, cancelling them.
        _ = tx.closed() => {
            inner.metrics.request(strategy_name(job.strategy), "cancelled", started.elapsed().as_secs_f64(), None, 0);
            return;
        }
        r = tokio::time::timeout(deadline, work) => {
            r.unwrap_or(Err(InferError::Timeout { seconds: deadline.as_secs() }))
        }
    };
    inner.record(&job, &result, started);
    let event = match result {
        Ok(r) => JobEvent::Done(Box::new(r)),
        Err(e) => JobEvent::Error(e),
    };
    let _ = tx.send(event).await;
}
