//! One worker's attempt at a whole answer.

use std::{collections::HashSet, sync::Arc, time::Instant};

use nova_api::{Attempt, Job};
use nova_proto::{FinishReason, TokenEvent, Usage, ValidRequest};

use super::Inner;
use crate::Worker;

/// A complete answer from one worker.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) worker: String,
    pub(crate) text: String,
    pub(crate) finish: FinishReason,
    pub(crate) usage: Usage,
    pub(crate) ttft_ms: Option<f64>,
    pub(crate) latency_ms: f64,
}

/// A failed attempt.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) worker: String,
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    pub(crate) ttft_ms: Option<f64>,
    pub(crate) latency_ms: f64,
    pub(crate) tokens: u32,
}

impl Failure {
    pub(crate) fn attempt(&self) -> Attempt {
        Attempt {
            worker: self.worker.clone(),
            outcome: self.kind.into(),
            latency_ms: self.latency_ms,
            ttft_ms: self.ttft_ms,
            tokens: self.tokens,
            score: None,
            text: None,
        }
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Runs `req` on `worker` to completion. Cancel-safe: dropping the future drops the stream,
/// which cancels the generation on the worker.
pub(crate) async fn whole(
    worker: Arc<dyn Worker>,
    req: ValidRequest,
    started: Instant,
) -> Result<Answer, Failure> {
    let id = worker.id().to_string();
    let fail = |kind, message: String, ttft_ms, tokens| Failure {
        worker: id.clone(),
        kind,
        message,
        ttft_ms,
        latency_ms: ms(started),
        tokens,
    };
    let mut stream = match worker.submit(req) {
        Ok(s) => s,
        Err(e) => return Err(fail(e.kind(), e.to_string(), None, 0)),
    };
    let mut text = String::new();
    let mut ttft_ms = None;
    let mut tokens = 0;
    while let Some(ev) = stream.recv().await {
        match ev {
            Ok(TokenEvent::Token { text: t }) => {
                ttft_ms.get_or_insert_with(|| ms(started));
                tokens += 1;
                text.push_str(&t);
            }
            Ok(TokenEvent::Done { finish_reason, usage }) => {
                return Ok(Answer {
                    worker: id.clone(),
                    text,
                    finish: finish_reason,
                    usage,
                    ttft_ms,
                    latency_ms: ms(started),
                });
            }
            Err(e) => return Err(fail(e.kind(), e.to_string(), ttft_ms, tokens)),
        }
    }
    Err(fail("disconnected", "the worker went away mid-answer".into(), ttft_ms, tokens))
}

/// Whole-answer attempts running in parallel, with the retry budget: the part race and
/// best-of-n share.
pub(crate) struct Attempts {
    pub(crate) set: tokio::task::JoinSet<Result<Answer, Failure>>,
    /// Workers asked so far (a retry never asks one twice).
    tried: HashSet<String>,
    /// Workers whose attempt has not finished.
    pub(crate) running: HashSet<String>,
    retries: usize,
    started: Instant,
}

impl Attempts {
    /// Starts an attempt on each of `workers`.
    pub(crate) fn start(
        inner: &Inner,
        job: &Job,
        workers: Vec<Arc<dyn Worker>>,
        started: Instant,
    ) -> Self {
        let mut a = Self {
            set: tokio::task::JoinSet::new(),
            tried: HashSet::new(),
            running: HashSet::new(),
            retries: inner.max_retries(),
            started,
        };
        for w in workers {
            a.spawn(w, job);
        }
        a
    }

    fn spawn(&mut self, w: Arc<dyn Worker>, job: &Job) {
        self.tried.insert(w.id().to_string());
        self.running.insert(w.id().to_string());
        self.set.spawn(whole(w, job.request.clone(), self.started));
    }

    /// Records that `worker` finished.
    pub(crate) fn finished(&mut self, worker: &str) {
        self.running.remove(worker);
    }

    /// After a failure: starts an attempt on an untried eligible worker, if the budget allows.
    pub(crate) fn retry(&mut self, inner: &Inner, job: &Job) {
        if self.retries == 0 {
            return;
        }
        if let Some(w) = inner.replacement(job, &self.tried) {
            self.retries -= 1;
            tracing::info!(worker = w.id(), "retrying on another worker");
            self.spawn(w, job);
        }
    }
}
