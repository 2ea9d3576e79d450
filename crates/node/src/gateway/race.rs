//! Race: ask K workers, keep the first answer, cancel the rest.
//!
//! Whole answers: the first *complete* answer wins, so a worker that dies mid-generation never
//! matters while another is still running; failures are replaced by untried workers while the
//! retry budget lasts. Streamed answers: the first worker to produce a token wins and is
//! streamed to the client; if it fails before its first token another one is used. If it
//! fails after, the answer is handed over: another worker continues from the prompt plus the
//! text the client already has (see `nova_proto::Resume`), so the client sees one
//! uninterrupted stream (with greedy decoding, the text of a fault-free run). Only when no
//! worker can continue does the stream end with an error event.

use std::{sync::Arc, time::Instant};

use nova_api::{Attempt, Handover, InferError, Job, JobEvent, JobResult, Trace};
use nova_engine::{EngineError, TokenStream};
use nova_proto::{Strategy, TaskId, TokenEvent, ValidRequest};
use tokio::{
    sync::mpsc,
    task::{AbortHandle, JoinSet},
};

use super::{
    attempt::{failure_kind, ms, rejected, Failure, MAX_BUSY_RETRIES},
    dispatch::{Started, Tried},
    round::{Repeat, Round},
    Inner,
};

fn attempt(worker: &str, outcome: &str, t0: Instant, ttft_ms: Option<f64>, tokens: u32) -> Attempt {
    Attempt {
        worker: worker.into(),
        outcome: outcome.into(),
        latency_ms: ms(t0),
        ttft_ms,
        tokens,
        ..Attempt::default()
    }
}

fn deadline(job: &Job, t0: Instant) -> tokio::time::Instant {
    tokio::time::Instant::from_std(t0) + job.deadline
}

/// The first complete answer to `req` among `started` (retrying failures), as a result.
pub(crate) async fn whole(
    inner: &Arc<Inner>,
    job: &Job,
    req: &ValidRequest,
    started: Vec<Started>,
    tried: Tried,
    t0: Instant,
) -> Result<JobResult, InferError> {
    let round = Round {
        inner,
        job,
        req: req.clone(),
        t0,
        until: deadline(job, t0),
        want: 1,
        repeat: Repeat::No,
    };
    let mut got = round.collect(started, tried).await?;
    let Some(answer) = got.answers.pop() else {
        return Err(all_failed(&got.failures));
    };
    inner.metrics.attempt(&answer.worker, "won");
    let mut attempts = got.other_attempts(t0);
    attempts.push(answer.attempt("won"));
    Ok(JobResult {
        text: answer.text,
        finish_reason: answer.finish,
        usage: answer.usage,
        trace: Trace {
            strategy: Strategy::Race,
            winner: Some(answer.worker),
            attempts,
            latency_ms: ms(t0),
            ttft_ms: answer.ttft_ms,
            ..Trace::default()
        },
        sources: Vec::new(),
    })
}

fn all_failed(failures: &[Failure]) -> InferError {
    let last = failures.last().map(|f| format!("{}: {}", f.worker, f.message)).unwrap_or_default();
    InferError::Failed { message: format!("all {} attempts failed; last: {last}", failures.len()) }
}

/// What a forwarder reports: a worker's event, or that its stream ended.
type Forwarded = (usize, Option<Result<TokenEvent, EngineError>>);

/// The streams of one streamed race: forwarders feeding one channel, by index.
struct Streams {
    tasks: JoinSet<()>,
    aborts: Vec<AbortHandle>,
    ids: Vec<String>,
    tx: mpsc::Sender<Forwarded>,
    rx: mpsc::Receiver<Forwarded>,
}

impl Streams {
    fn new() -> Self {
        let (tx, rx) = mpsc::channel(64);
        Self { tasks: JoinSet::new(), aborts: Vec::new(), ids: Vec::new(), tx, rx }
    }

    /// Forwards `s`'s events; returns its index.
    fn add(&mut self, s: Started) -> usize {
        let idx = self.ids.len();
        self.ids.push(s.worker.id().to_string());
        let out = self.tx.clone();
        let mut stream: TokenStream = s.stream;
        self.aborts.push(self.tasks.spawn(async move {
            while let Some(ev) = stream.recv().await {
                let failed = ev.is_err();
                // An error ends the stream: report it once, not again as a disconnect.
                if out.send((idx, Some(ev))).await.is_err() || failed {
                    return;
                }
            }
            let _ = out.send((idx, None)).await;
        }));
        idx
    }

    /// Stops every stream but `keep`'s: dropping a stream cancels it on its worker.
    fn cancel_all_but(&self, keep: usize) {
        for (i, a) in self.aborts.iter().enumerate() {
            if i != keep {
                a.abort();
            }
        }
    }

    /// The next event of stream `idx`, skipping any others still in the channel.
    async fn next_of(&mut self, idx: usize) -> Option<Result<TokenEvent, EngineError>> {
        loop {
            match self.rx.recv().await {
                Some((i, ev)) if i == idx => return ev,
                Some(_) => continue,
                None => return None,
            }
        }
    }
}

/// Streams the first worker to answer `req` to `tx`, handing over to another worker if it
/// fails midway (a council's synthesis streams this way too).
pub(crate) async fn streamed(
    inner: &Arc<Inner>,
    job: &Job,
    req: &ValidRequest,
    started: Vec<Started>,
    tried: Tried,
    tx: &mpsc::Sender<JobEvent>,
    t0: Instant,
) -> Result<JobResult, InferError> {
    let until = deadline(job, t0);
    let mut streams = Streams::new();
    let mut live = 0usize;
    for s in started {
        streams.add(s);
        live += 1;
    }
    let mut attempts = Vec::new();
    let (mut retries, mut busy_retries) = (inner.max_retries(), MAX_BUSY_RETRIES);

    // Phase 1: the first worker to say anything useful wins.
    let (mut current, first) = loop {
        let Some((idx, ev)) = streams.rx.recv().await else {
            return Err(InferError::Failed { message: "no worker answered".into() });
        };
        let err = match ev {
            Some(Ok(ev)) => break (idx, ev),
            Some(Err(e)) => Some(e),
            None => None,
        };
        let (kind, wire, msg) = failure_kind(err.as_ref());
        let worker = streams.ids[idx].clone();
        inner.metrics.attempt(&worker, kind);
        attempts.push(attempt(&worker, kind, t0, None, 0));
        live -= 1;
        if wire.is_client_error() {
            return Err(rejected(wire, &msg));
        }
        let budget = if wire.is_busy() { &mut busy_retries } else { &mut retries };
        if *budget > 0 {
            if wire.is_busy() {
                tried.remove(&worker);
            }
            // Wait for a free worker only when nothing else is still running.
            let wait = if live == 0 { until } else { tokio::time::Instant::now() };
            if let Ok(more) = inner.start(job, req, 1, &tried, wait).await {
                for s in more {
                    *budget -= 1;
                    streams.add(s);
                    live += 1;
                }
            }
        }
        if live == 0 {
            return Err(InferError::Failed {
                message: format!("every worker failed; last: {worker}: {msg}"),
            });
        }
    };
    streams.cancel_all_but(current);
    for (i, id) in streams.ids.iter().enumerate() {
        if i != current && !attempts.iter().any(|a: &Attempt| &a.worker == id) {
            inner.metrics.attempt(id, "cancelled");
            attempts.push(attempt(id, "cancelled", t0, None, 0));
        }
    }

    // Phase 2: stream the winner; hand over to another worker if it fails.
    let ttft_ms = Some(ms(t0));
    let mut text = String::new();
    let mut sent = 0u32;
    let mut handovers: Vec<Handover> = Vec::new();
    // Workers that failed this job: a continuation never goes to one of them, though the
    // race's cancelled losers are fine.
    let failed = Tried::default();
    let mut took_over_at: Option<f64> = None;
    let mut next = Some(first);
    loop {
        let ev = match next.take() {
            Some(ev) => Some(Ok(ev)),
            None => streams.next_of(current).await,
        };
        let err = match ev {
            Some(Ok(TokenEvent::Token { text: t })) => {
                sent += 1;
                text.push_str(&t);
                if tx.send(JobEvent::Token(t)).await.is_err() {
                    return Err(InferError::Shutdown);
                }
                continue;
            }
            Some(Ok(TokenEvent::Done { finish_reason, usage })) => {
                streams.tasks.abort_all();
                let winner = streams.ids[current].clone();
                inner.metrics.attempt(&winner, "won");
                attempts.push(attempt(
                    &winner,
                    "won",
                    t0,
                    took_over_at.or(ttft_ms),
                    usage.completion_tokens,
                ));
                return Ok(JobResult {
                    text,
                    finish_reason,
                    usage,
                    trace: Trace {
                        strategy: Strategy::Race,
                        winner: Some(winner),
                        attempts,
                        latency_ms: ms(t0),
                        ttft_ms,
                        handovers,
                        ..Trace::default()
                    },
                    sources: Vec::new(),
                });
            }
            Some(Err(e)) => Some(e),
            None => None,
        };
        let (kind, wire, msg) = failure_kind(err.as_ref());
        let from = streams.ids[current].clone();
        inner.metrics.attempt(&from, kind);
        attempts.push(attempt(&from, kind, t0, ttft_ms, sent));
        failed.insert(&from);
        tracing::warn!(worker = %from, error = %msg, tokens = sent, "streaming worker failed; handing over");
        let gone = |why: String| InferError::Failed {
            message: format!("worker {from} failed after streaming {sent} tokens ({msg}); {why}"),
        };
        if wire.is_client_error() || handovers.len() > inner.max_retries() {
            return Err(gone("no more hand-overs".into()));
        }
        let id = TaskId(req.id.0.wrapping_add(handovers.len() as u64 + 1));
        let resumed = req.resumed(id, text.clone());
        let mut more = inner
            .start(job, &resumed, 1, &failed, until)
            .await
            .map_err(|e| gone(format!("no worker could continue it: {e}")))?;
        let Some(s) = more.pop() else {
            return Err(gone("no worker could continue it".into()));
        };
        handovers.push(Handover {
            from,
            to: s.worker.id().to_string(),
            after_tokens: sent,
            at_ms: ms(t0),
            reason: kind.into(),
        });
        took_over_at = Some(ms(t0));
        current = streams.add(s);
    }
}
