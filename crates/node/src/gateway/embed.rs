//! Embedding requests: admitted and queued like jobs, then sent whole to one worker that
//! serves the model (the fastest free one, as a race of one would pick), so every vector of a
//! request comes from one model. A worker that fails, or has no embeddings (an older nova, an
//! upstream server without them), is passed over for the next; a worker that finds the request
//! itself at fault (an input longer than its model's window) ends it with a 400.

use std::{
    collections::HashMap,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use nova_api::{Attempt, EmbedJob, EmbedResult, InferError};
use nova_engine::EngineError;
use nova_proto::ErrorKind;
use nova_router::Ineligible;

use super::{
    attempt::{ms, rejected, MAX_BUSY_RETRIES},
    dispatch::{describe_no_capacity, Tried},
    lock, Inner, QueuePlace,
};
use crate::{EmbedFuture, Worker};

/// How often a request waiting for a free worker looks again without a capacity notice.
const POLL: Duration = Duration::from_millis(20);

/// Most bytes of a worker's error kept for the client's message.
const MAX_REASON_BYTES: usize = 300;

/// What happened to the workers asked so far.
#[derive(Default)]
struct Attempts {
    trace: Vec<Attempt>,
    /// Why workers without embeddings could not help (`id: why`).
    unsupported: Vec<String>,
    /// The last real failure.
    last: Option<String>,
    failures: usize,
    busy: usize,
}

impl Attempts {
    fn record(&mut self, inner: &Inner, worker: &str, outcome: &str, t0: Instant) {
        inner.metrics.attempt(worker, outcome);
        self.trace.push(Attempt {
            worker: worker.into(),
            outcome: outcome.into(),
            latency_ms: ms(t0),
            ..Attempt::default()
        });
    }
}

fn reason(e: &EngineError) -> String {
    let mut s = e.to_string();
    nova_proto::knowledge::truncate_utf8(&mut s, MAX_REASON_BYTES);
    s
}

impl Inner {
    /// Runs `job` (see [`nova_api::Inference::embed`]). Cancel-safe: dropping the future drops
    /// the worker's future, which cancels its work, and gives back the queue place and permit.
    pub(crate) async fn embed(self: Arc<Self>, job: EmbedJob) -> Result<EmbedResult, InferError> {
        let t0 = Instant::now();
        let deadline = job.deadline;
        let result = match tokio::time::timeout(deadline, self.embed_inner(&job, t0)).await {
            Ok(r) => r,
            Err(_) => Err(InferError::Timeout { seconds: deadline.as_secs() }),
        };
        self.capacity.notify_waiters();
        let (outcome, prompt_tokens) = match &result {
            Ok(r) => ("ok", r.embeddings.prompt_tokens),
            Err(e) => (e.kind(), 0),
        };
        self.metrics.request(crate::metrics::RequestRecord {
            strategy: "embeddings",
            outcome,
            latency_s: t0.elapsed().as_secs_f64(),
            ttft_s: None,
            tokens: 0,
            prompt_tokens,
            workers: &[],
        });
        if let Some(s) = &self.store {
            let rec = nova_store::RequestRecord {
                at_ms: crate::now_ms(),
                strategy: "embeddings".into(),
                model: job.model.clone(),
                outcome: outcome.into(),
                latency_ms: ms(t0),
                ttft_ms: None,
                tokens: 0,
                winner: result.as_ref().ok().map(|r| r.worker.clone()),
            };
            if let Err(e) = s.log_request(rec) {
                tracing::warn!(error = %e, "request not logged");
            }
        }
        result
    }

    async fn embed_inner(&self, job: &EmbedJob, t0: Instant) -> Result<EmbedResult, InferError> {
        self.check_open(job.model.as_ref())?;
        let until = tokio::time::Instant::now() + self.config.queue_wait.min(job.deadline);
        let full = || InferError::Overloaded { retry_after_s: 1 };
        let _permit = {
            let _place = QueuePlace::enter(self)?;
            let _turn =
                tokio::time::timeout_at(until, self.queue.lock()).await.map_err(|_| full())?;
            tokio::time::timeout_at(until, self.admission.clone().acquire_owned())
                .await
                .map_err(|_| full())?
                .map_err(|_| InferError::Shutdown)?
        };
        let tried = Tried::default();
        let mut attempts = Attempts::default();
        loop {
            let (worker, work) = self.start_embed(job, &tried, &mut attempts, until, t0).await?;
            let id = worker.id().to_string();
            match work.await {
                Ok(embeddings) => {
                    let n = job.request.inputs.len();
                    match embeddings.checked(n) {
                        Ok(embeddings) => {
                            attempts.record(self, &id, "won", t0);
                            return Ok(EmbedResult {
                                embeddings,
                                worker: id,
                                attempts: attempts.trace,
                                latency_ms: ms(t0),
                            });
                        }
                        Err(why) => {
                            attempts.record(self, &id, "bad_reply", t0);
                            attempts.last = Some(format!("worker {id} sent {why}"));
                            attempts.failures += 1;
                        }
                    }
                }
                Err(e) if e.wire_kind().is_client_error() => {
                    attempts.record(self, &id, e.kind(), t0);
                    return Err(rejected(e.wire_kind(), &reason(&e)));
                }
                Err(e) if e.wire_kind() == ErrorKind::Unsupported => {
                    attempts.record(self, &id, e.kind(), t0);
                    attempts.unsupported.push(reason(&e));
                }
                Err(e) if e.wire_kind().is_busy() && attempts.busy < MAX_BUSY_RETRIES => {
                    // Busy costs the worker nothing: it may be asked again later.
                    attempts.record(self, &id, e.kind(), t0);
                    attempts.busy += 1;
                    tried.remove(&id);
                    // Its queue filled since it last reported: give it a moment before asking
                    // again rather than spend the busy budget at once.
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => {
                    attempts.record(self, &id, e.kind(), t0);
                    attempts.last = Some(reason(&e));
                    attempts.failures += 1;
                }
            }
            if attempts.failures > self.config.max_retries {
                return Err(self.give_up(job, &attempts));
            }
        }
    }

    /// The error once no worker is left to ask.
    fn give_up(&self, job: &EmbedJob, attempts: &Attempts) -> InferError {
        let model = job.model.as_deref().unwrap_or("any model");
        let message = match (&attempts.last, attempts.unsupported.is_empty()) {
            (Some(last), _) => format!("no worker could embed the inputs; the last said: {last}"),
            (None, false) => format!(
                "no worker serving {model} computes embeddings: {}",
                attempts.unsupported.join("; ")
            ),
            (None, true) => "no worker could embed the inputs".into(),
        };
        InferError::Failed { message }
    }

    /// Hands `job` to the best untried worker that takes it, waiting until `until` while every
    /// candidate is busy. Workers that refuse at once (no embeddings) are recorded and skipped.
    async fn start_embed(
        &self,
        job: &EmbedJob,
        tried: &Tried,
        attempts: &mut Attempts,
        until: tokio::time::Instant,
        t0: Instant,
    ) -> Result<(Arc<dyn Worker>, EmbedFuture), InferError> {
        loop {
            let capacity = self.capacity.notified();
            let mut busy = false;
            {
                let _one_at_a_time = lock(&self.dispatch);
                let view = self.view();
                // Placed as a race of one is: by the speed a new request can expect. No tags.
                let seed = self.seed.fetch_add(1, Ordering::Relaxed);
                let sel = nova_router::select(
                    &view,
                    job.model.as_deref(),
                    view.workers.len(),
                    &[],
                    &lock(&self.rates),
                    seed,
                );
                let by_id: HashMap<String, Arc<dyn Worker>> =
                    lock(&self.workers).iter().map(|w| (w.id().to_string(), w.clone())).collect();
                for id in &sel.workers {
                    if tried.contains(id) {
                        continue;
                    }
                    let Some(worker) = by_id.get(id).cloned() else { continue };
                    match worker.embed(job.request.clone()) {
                        Ok(work) => {
                            tried.insert(id);
                            return Ok((worker, work));
                        }
                        Err(e) if e.wire_kind() == ErrorKind::Unsupported => {
                            tried.insert(id);
                            attempts.record(self, id, e.kind(), t0);
                            attempts.unsupported.push(reason(&e));
                        }
                        Err(e) => {
                            tracing::debug!(worker = %id, error = %e, "worker refused an embedding request");
                            busy = true;
                        }
                    }
                }
                busy = busy
                    || view.workers.iter().any(|w| {
                        !tried.contains(&w.id)
                            && view.check(w, job.model.as_deref()) == Err(Ineligible::Busy)
                    });
                if !busy {
                    if attempts.trace.is_empty() {
                        let detail = describe_no_capacity(&view, job.model.as_deref(), tried);
                        return Err(InferError::NoCapacity { detail, retry_after_s: 5 });
                    }
                    return Err(self.give_up(job, attempts));
                }
            }
            let now = tokio::time::Instant::now();
            if now >= until {
                return Err(InferError::Overloaded { retry_after_s: 1 });
            }
            tokio::select! {
                () = capacity => {}
                () = tokio::time::sleep(POLL.min(until - now)) => {}
            }
        }
    }
}
