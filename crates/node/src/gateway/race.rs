//! Race: ask K workers, keep the first answer, cancel the rest.
//!
//! Whole answers: the first *complete* answer wins, so a worker that dies mid-generation never
//! matters while another is still running; failures are replaced by untried workers while the
//! retry budget lasts. Streamed answers: the first worker to produce a token wins and is
//! streamed to the client; if it fails before its first token another one is used, and if it
//! fails after, the stream ends with an explicit error (the client has seen partial text).

use std::{collections::HashSet, sync::Arc, time::Instant};

use nova_api::{Attempt, InferError, Job, JobEvent, JobResult, Trace};
use nova_engine::EngineError;
use nova_proto::TokenEvent;
use tokio::{sync::mpsc, task::JoinSet};

use super::{
    attempt::{Answer, Attempts, Failure},
    Inner,
};
use crate::Worker;

fn won(a: &Answer, outcome: &str) -> Attempt {
    Attempt {
        worker: a.worker.clone(),
        outcome: outcome.into(),
        latency_ms: a.latency_ms,
        ttft_ms: a.ttft_ms,
        tokens: a.usage.completion_tokens,
        score: None,
        text: None,
    }
}

fn cancelled(worker: &str, started: Instant) -> Attempt {
    Attempt {
        worker: worker.into(),
        outcome: "cancelled".into(),
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        ttft_ms: None,
        tokens: 0,
        score: None,
        text: None,
    }
}

fn all_failed(failures: &[Failure]) -> InferError {
    let last = failures.last().map(|f| format!("{}: {}", f.worker, f.message)).unwrap_or_default();
    InferError::Failed { message: format!("all {} attempts failed; last: {last}", failures.len()) }
}

pub(crate) async fn whole(
    inner: &Arc<Inner>,
    job: &Job,
    workers: Vec<Arc<dyn Worker>>,
    started: Instant,
) -> Result<JobResult, InferError> {
    let mut attempts_running = Attempts::start(inner, job, workers, started);
    let mut failures: Vec<Failure> = Vec::new();
    while let Some(joined) = attempts_running.set.join_next().await {
        match joined {
            Ok(Ok(answer)) => {
                attempts_running.finished(&answer.worker);
                // Aborting the others drops their streams: they are cancelled.
                attempts_running.set.abort_all();
                inner.metrics.attempt("won");
                let mut attempts: Vec<Attempt> = failures.iter().map(Failure::attempt).collect();
                attempts.push(won(&answer, "won"));
                for id in &attempts_running.running {
                    inner.metrics.attempt("cancelled");
                    attempts.push(cancelled(id, started));
                }
                return Ok(JobResult {
                    text: answer.text,
                    finish_reason: answer.finish,
                    usage: answer.usage,
                    trace: Trace {
                        strategy: job.strategy,
                        winner: Some(answer.worker),
                        attempts,
                        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                        ttft_ms: answer.ttft_ms,
                    },
                });
            }
            Ok(Err(failure)) => {
                tracing::warn!(worker = %failure.worker, error = %failure.message, "attempt failed");
                inner.metrics.attempt(failure.kind);
                attempts_running.finished(&failure.worker);
                failures.push(failure);
                attempts_running.retry(inner, job);
            }
            Err(join) => tracing::error!(error = %join, "attempt task failed"),
        }
    }
    Err(all_failed(&failures))
}

/// What a forwarder reports: a worker's event, or that its stream ended.
type Forwarded = (usize, Option<Result<TokenEvent, EngineError>>);

fn spawn_forwarder(
    tasks: &mut JoinSet<()>,
    idx: usize,
    worker: Arc<dyn Worker>,
    job: &Job,
    out: mpsc::Sender<Forwarded>,
) {
    let req = job.request.clone();
    tasks.spawn(async move {
        let mut stream = match worker.submit(req) {
            Ok(s) => s,
            Err(e) => {
                let _ = out.send((idx, Some(Err(e)))).await;
                return;
            }
        };
        while let Some(ev) = stream.recv().await {
            let failed = ev.is_err();
            // An error ends the stream: report it once, not again as a disconnect.
            if out.send((idx, Some(ev))).await.is_err() || failed {
                return;
            }
        }
        let _ = out.send((idx, None)).await;
    });
}

pub(crate) async fn streamed(
    inner: &Arc<Inner>,
    job: &Job,
    workers: Vec<Arc<dyn Worker>>,
    tx: &mpsc::Sender<JobEvent>,
    started: Instant,
) -> Result<JobResult, InferError> {
    let ms = || started.elapsed().as_secs_f64() * 1000.0;
    let (ev_tx, mut ev_rx) = mpsc::channel::<Forwarded>(64);
    let mut tasks = JoinSet::new();
    let mut ids: Vec<String> = Vec::new();
    let mut tried = HashSet::new();
    let mut live = 0usize;
    for w in workers {
        tried.insert(w.id().to_string());
        ids.push(w.id().to_string());
        spawn_forwarder(&mut tasks, ids.len() - 1, w, job, ev_tx.clone());
        live += 1;
    }
    let mut attempts = Vec::new();
    let mut retries = inner.max_retries();

    // Phase 1: the first worker to say anything useful wins.
    let (winner, first) = loop {
        let Some((idx, ev)) = ev_rx.recv().await else {
            return Err(InferError::Failed { message: "no worker answered".into() });
        };
        let (kind, msg) = match ev {
            Some(Ok(ev)) => break (idx, ev),
            Some(Err(e)) => (e.kind(), e.to_string()),
            None => ("disconnected", "the worker went away".to_string()),
        };
        inner.metrics.attempt(kind);
        attempts.push(Attempt {
            worker: ids[idx].clone(),
            outcome: kind.into(),
            latency_ms: ms(),
            ttft_ms: None,
            tokens: 0,
            score: None,
            text: None,
        });
        let last_error = format!("{}: {msg}", ids[idx]);
        live -= 1;
        if retries > 0 {
            if let Some(w) = inner.replacement(job, &tried) {
                retries -= 1;
                tried.insert(w.id().to_string());
                ids.push(w.id().to_string());
                spawn_forwarder(&mut tasks, ids.len() - 1, w, job, ev_tx.clone());
                live += 1;
            }
        }
        if live == 0 {
            return Err(InferError::Failed {
                message: format!("every worker failed; last: {last_error}"),
            });
        }
    };
    // Cancel the losers: their forwarders drop their streams.
    drop(ev_tx);
    let winner_id = ids[winner].clone();
    for (i, id) in ids.iter().enumerate() {
        if i != winner && !attempts.iter().any(|a: &Attempt| &a.worker == id) {
            inner.metrics.attempt("cancelled");
            attempts.push(cancelled(id, started));
        }
    }
    let ttft_ms = Some(ms());
    let mut text = String::new();
    let mut tokens = 0u32;
    let mut next = Some(first);
    loop {
        let ev = match next.take() {
            Some(ev) => Some(Ok(ev)),
            None => loop {
                match ev_rx.recv().await {
                    Some((i, ev)) if i == winner => break ev,
                    Some(_) => continue,
                    None => break None,
                }
            },
        };
        match ev {
            Some(Ok(TokenEvent::Token { text: t })) => {
                tokens += 1;
                text.push_str(&t);
                if tx.send(JobEvent::Token(t)).await.is_err() {
                    return Err(InferError::Shutdown);
                }
            }
            Some(Ok(TokenEvent::Done { finish_reason, usage })) => {
                tasks.abort_all();
                inner.metrics.attempt("won");
                attempts.push(Attempt {
                    worker: winner_id.clone(),
                    outcome: "won".into(),
                    latency_ms: ms(),
                    ttft_ms,
                    tokens: usage.completion_tokens,
                    score: None,
                    text: None,
                });
                return Ok(JobResult {
                    text,
                    finish_reason,
                    usage,
                    trace: Trace {
                        strategy: job.strategy,
                        winner: Some(winner_id),
                        attempts,
                        latency_ms: ms(),
                        ttft_ms,
                    },
                });
            }
            Some(Err(e)) => {
                inner.metrics.attempt(e.kind());
                return Err(InferError::Failed {
                    message: format!(
                        "worker {winner_id} failed after streaming {tokens} tokens: {e}"
                    ),
                });
            }
            None => {
                inner.metrics.attempt("disconnected");
                return Err(InferError::Failed {
                    message: format!(
                        "worker {winner_id} went away after streaming {tokens} tokens"
                    ),
                });
            }
        }
    }
}
