//! A round: one request fanned out to workers as whole answers, with the retry budget, until
//! enough answers are in or the round's budget ends. Every strategy composes rounds: race
//! wants the first answer, best-of-n and vote want K, a council runs one round per stage.

use std::{collections::HashSet, sync::Arc, time::Instant};

use nova_api::{Attempt, InferError, Job};
use nova_proto::ValidRequest;
use tokio::task::JoinSet;

use super::{
    attempt::{whole, Answer, Failure, MAX_BUSY_RETRIES},
    dispatch::{Started, Tried},
    Inner,
};

/// What a round asks for.
pub(crate) struct Round<'a> {
    pub(crate) inner: &'a Arc<Inner>,
    pub(crate) job: &'a Job,
    /// The request of this round (the job's own, or a stage's prompt).
    pub(crate) req: ValidRequest,
    /// When the job started: attempts' times are measured from it.
    pub(crate) t0: Instant,
    /// When the round stops waiting and keeps what it has.
    pub(crate) until: tokio::time::Instant,
    /// Answers wanted; the round ends once it has them.
    pub(crate) want: usize,
    /// Whether a worker may be asked for another sample of the same request.
    pub(crate) repeat: Repeat,
}

/// Whether samples can outnumber the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// One attempt per worker at a time (a council's members each answer once).
    No,
    /// More samples on workers' free sequences, started at once: a device that generates
    /// several at once answers them in about the time of one, and nothing waits in a queue.
    Free,
    /// As `Free`, then one more on each worker whose queue has room: vote's samples outnumber
    /// the workers even when each generates one at a time.
    Queued,
}

/// What a round brought back.
#[derive(Default)]
pub(crate) struct Collected {
    /// Complete answers, in the order they finished.
    pub(crate) answers: Vec<Answer>,
    /// Failed attempts, in order.
    pub(crate) failures: Vec<Failure>,
    /// Workers still running when the round ended (now cancelled).
    pub(crate) cancelled: Vec<String>,
}

impl Collected {
    /// The trace entries of the failures and cancellations (answers are the caller's to label).
    pub(crate) fn other_attempts(&self, t0: Instant) -> Vec<Attempt> {
        let mut out: Vec<Attempt> = self.failures.iter().map(Failure::attempt).collect();
        for id in &self.cancelled {
            out.push(Attempt {
                worker: id.clone(),
                outcome: "cancelled".into(),
                latency_ms: super::attempt::ms(t0),
                ..Attempt::default()
            });
        }
        out
    }

    /// The error of a round that brought no answer.
    pub(crate) fn no_answer(&self, what: &str) -> InferError {
        let last = self
            .failures
            .last()
            .map(|f| format!("{}: {}", f.worker, f.message))
            .unwrap_or_else(|| "none finished in time".into());
        InferError::Failed { message: format!("{what}: no answer; last: {last}") }
    }
}

/// Attempts in flight and the budgets that bound how many more may start.
struct Flight {
    set: JoinSet<Result<Answer, Failure>>,
    /// The worker of each attempt running (a worker appears once per sample it runs).
    running: Vec<String>,
    tried: Tried,
    retries: usize,
    busy_retries: usize,
    /// Workers that failed in this round (not merely busy): no more samples go to them.
    failed: HashSet<String>,
    /// The next sample index: each attempt gets its own id (and seed, if fixed).
    next_sample: u64,
}

impl Flight {
    /// One of `worker`'s attempts ended.
    fn done_running(&mut self, worker: &str) {
        if let Some(i) = self.running.iter().position(|w| w == worker) {
            self.running.swap_remove(i);
        }
    }
}

impl Round<'_> {
    /// Runs `started` (already accepted by workers, asked with `tried`) and tops up to `want`
    /// answers. A client error (the request itself is at fault) ends the round at once with
    /// that error; otherwise the round ends with what it has when `want` answers are in, no
    /// attempt is left to run, or `until` passes.
    pub(crate) async fn collect(
        &self,
        started: Vec<Started>,
        tried: Tried,
    ) -> Result<Collected, InferError> {
        let mut f = Flight {
            set: JoinSet::new(),
            running: Vec::new(),
            tried,
            retries: self.inner.max_retries(),
            busy_retries: MAX_BUSY_RETRIES,
            failed: HashSet::new(),
            next_sample: started.len() as u64,
        };
        for s in started {
            self.spawn(&mut f, s);
        }
        let mut out = Collected::default();
        self.top_up(&mut f, &out).await;
        while out.answers.len() < self.want {
            let joined = tokio::select! {
                j = f.set.join_next() => j,
                _ = tokio::time::sleep_until(self.until) => break,
            };
            match joined {
                None => break,
                Some(Ok(Ok(a))) => {
                    f.done_running(&a.worker);
                    out.answers.push(a);
                }
                Some(Ok(Err(failure))) => {
                    tracing::warn!(worker = %failure.worker, error = %failure.message, "attempt failed");
                    self.inner.metrics.attempt(&failure.worker, failure.kind);
                    f.done_running(&failure.worker);
                    if !failure.wire.is_busy() {
                        f.failed.insert(failure.worker.clone());
                    }
                    if let Some(e) = failure.rejection() {
                        f.set.abort_all();
                        return Err(e);
                    }
                    self.retry(&mut f, &failure).await;
                    out.failures.push(failure);
                }
                Some(Err(e)) => tracing::error!(error = %e, "attempt task failed"),
            }
            self.top_up(&mut f, &out).await;
        }
        // Aborting drops the streams: the workers stop generating.
        f.set.abort_all();
        for id in f.running.drain(..) {
            self.inner.metrics.attempt(&id, "cancelled");
            out.cancelled.push(id);
        }
        Ok(out)
    }

    fn spawn(&self, f: &mut Flight, s: Started) {
        f.running.push(s.worker.id().to_string());
        f.set.spawn(whole(s, self.t0));
    }

    /// Starts more samples while fewer than `want` answers are in or running, as `repeat`
    /// allows: first on free sequences (a worker may take several), then one more each on
    /// workers whose queue has room now. A full swarm means fewer samples, not a longer wait.
    async fn top_up(&self, f: &mut Flight, out: &Collected) {
        if self.repeat == Repeat::No {
            return;
        }
        let most = (self.want + self.inner.max_retries() + MAX_BUSY_RETRIES) as u64;
        let missing = self.want.saturating_sub(out.answers.len() + f.set.len());
        let room = missing.min(most.saturating_sub(f.next_sample) as usize);
        if room > 0 {
            let failed = Tried::default();
            for id in &f.failed {
                failed.insert(id);
            }
            for s in self.inner.start_samples(self.job, &self.req, f.next_sample, room, &failed) {
                f.next_sample += 1;
                f.tried.insert(s.worker.id());
                self.spawn(f, s);
            }
        }
        if self.repeat != Repeat::Queued {
            return;
        }
        // A fresh "asked" set per layer lets every worker take one more sample; those that
        // failed stay out.
        let new_layer = |f: &Flight| {
            let layer = Tried::default();
            for id in &f.failed {
                layer.insert(id);
            }
            layer
        };
        let mut layer = new_layer(f);
        for id in &f.running {
            layer.insert(id);
        }
        let mut fresh_layers = 0;
        // Failed samples are replaced, but a worker that fails every time cannot loop.
        while out.answers.len() + f.set.len() < self.want && f.next_sample < most {
            let req = self.req.sample(f.next_sample);
            let now = tokio::time::Instant::now();
            match self.inner.start(self.job, &req, 1, &layer, now).await {
                Ok(started) => {
                    for s in started {
                        f.next_sample += 1;
                        f.tried.insert(s.worker.id());
                        self.spawn(f, s);
                    }
                }
                Err(_) if fresh_layers == 0 => {
                    fresh_layers += 1;
                    layer = new_layer(f);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "no worker free for another sample");
                    return;
                }
            }
        }
    }

    /// After `failure`: starts an attempt on another worker if the budget allows. With other
    /// attempts still running it takes only a worker that is free now; with none left it waits
    /// (until the round's end) for one to free up. A worker that was only busy may be asked
    /// again.
    async fn retry(&self, f: &mut Flight, failure: &Failure) {
        let busy = failure.wire.is_busy();
        let left = if busy { f.busy_retries } else { f.retries };
        if left == 0 {
            return;
        }
        if busy {
            f.tried.remove(&failure.worker);
        }
        let wait = if f.running.is_empty() { self.until } else { tokio::time::Instant::now() };
        let req = self.req.sample(f.next_sample);
        match self.inner.start(self.job, &req, 1, &f.tried, wait).await {
            Ok(started) => {
                for s in started {
                    if busy {
                        f.busy_retries -= 1;
                    } else {
                        f.retries -= 1;
                    }
                    f.next_sample += 1;
                    tracing::info!(worker = s.worker.id(), "retrying on another worker");
                    self.spawn(f, s);
                }
            }
            Err(e) => tracing::debug!(error = %e, "no worker for a retry"),
        }
    }
}
