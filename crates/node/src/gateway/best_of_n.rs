//! Best-of-n: collect up to K whole answers within the deadline and return the one the
//! reranker scores highest. Failed attempts are replaced by untried workers while the retry
//! budget lasts; at 90 % of the deadline the answers in hand are judged, so a straggler cannot
//! turn a good result into a timeout.

use std::{sync::Arc, time::Instant};

use nova_api::{Attempt, InferError, Job, JobResult, Trace};
use nova_proto::{ChatMessage, FinishReason, Prompt};
use nova_router::{Candidate, Reranker, RuleReranker};

use super::{
    attempt::{Answer, Attempts, Failure},
    dispatch::{Started, Tried},
    Inner,
};

fn prompt_text(p: &Prompt) -> String {
    match p {
        Prompt::Text(t) => t.clone(),
        Prompt::Chat(m) => {
            m.iter().map(|m: &ChatMessage| m.content.as_str()).collect::<Vec<_>>().join("\n")
        }
    }
}

pub(crate) async fn run(
    inner: &Arc<Inner>,
    job: &Job,
    workers: Vec<Started>,
    tried: Tried,
    started: Instant,
) -> Result<JobResult, InferError> {
    let mut running = Attempts::start(inner, workers, tried, started);
    let judge_at = tokio::time::Instant::from_std(started) + job.deadline.mul_f64(0.9);
    let mut answers: Vec<Answer> = Vec::new();
    let mut failures: Vec<Failure> = Vec::new();
    loop {
        let joined = tokio::select! {
            j = running.set.join_next() => j,
            _ = tokio::time::sleep_until(judge_at) => break,
        };
        match joined {
            None => break,
            Some(Ok(Ok(a))) => {
                running.finished(&a.worker);
                answers.push(a);
            }
            Some(Ok(Err(f))) => {
                inner.metrics.attempt(f.kind);
                running.finished(&f.worker);
                if let Some(e) = f.rejection() {
                    running.set.abort_all();
                    return Err(e);
                }
                running.retry(inner, job, &f, judge_at).await;
                failures.push(f);
            }
            Some(Err(e)) => tracing::error!(error = %e, "attempt task failed"),
        }
    }
    running.set.abort_all();
    if answers.is_empty() {
        let last = failures
            .last()
            .map(|f| format!("{}: {}", f.worker, f.message))
            .unwrap_or_else(|| "none finished in time".into());
        return Err(InferError::Failed { message: format!("no candidate answer; last: {last}") });
    }
    let candidates: Vec<Candidate> = answers
        .iter()
        .map(|a| Candidate {
            worker: a.worker.clone(),
            text: a.text.clone(),
            complete: a.finish == FinishReason::Stop,
        })
        .collect();
    let prompt = prompt_text(&job.request.prompt);
    let scores = RuleReranker.scores(&prompt, &candidates);
    let best = RuleReranker.best(&prompt, &candidates).unwrap_or(0);
    let mut attempts: Vec<Attempt> = failures.iter().map(Failure::attempt).collect();
    for (i, a) in answers.iter().enumerate() {
        let outcome = if i == best { "won" } else { "lost" };
        inner.metrics.attempt(outcome);
        attempts.push(Attempt {
            worker: a.worker.clone(),
            outcome: outcome.into(),
            latency_ms: a.latency_ms,
            ttft_ms: a.ttft_ms,
            tokens: a.usage.completion_tokens,
            score: Some(scores[i]),
            text: job.debug.then(|| a.text.clone()),
        });
    }
    let winner = answers.swap_remove(best);
    Ok(JobResult {
        text: winner.text,
        finish_reason: winner.finish,
        usage: winner.usage,
        trace: Trace {
            strategy: job.strategy,
            winner: Some(winner.worker),
            attempts,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            ttft_ms: winner.ttft_ms,
            handovers: Vec::new(),
        },
    })
}
