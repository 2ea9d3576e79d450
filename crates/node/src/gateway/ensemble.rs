//! Best-of-n and vote: collect K whole answers, then pick one.
//!
//! Best-of-n lets the reranker pick; vote picks from the largest cluster of equal final claims
//! (self-consistency), the reranker breaking ties. Both report how much the answers agreed.
//! Failed attempts are replaced while the retry budget lasts; at 90 % of the deadline the
//! answers in hand are judged, so a straggler cannot turn a good result into a timeout. Vote
//! asks workers for more than one sample when K exceeds the workers free.

use std::{sync::Arc, time::Instant};

use nova_api::{Attempt, InferError, Job, JobResult, Trace, VoteSummary};
use nova_proto::{ChatMessage, FinishReason, Prompt, Role, Strategy};
use nova_router::{
    vote::{vote, Question},
    Candidate, Reranker, RuleReranker,
};

use super::{
    attempt::{ms, Answer},
    dispatch::{Started, Tried},
    round::{Repeat, Round},
    Inner,
};

/// All of a prompt's text, for the reranker's relevance signal.
pub(crate) fn prompt_text(p: &Prompt) -> String {
    match p {
        Prompt::Text(t) => t.clone(),
        Prompt::Chat(m) => {
            m.iter().map(|m: &ChatMessage| m.content.as_str()).collect::<Vec<_>>().join("\n")
        }
    }
}

/// The question being answered: the last user message (or the raw prompt).
pub(crate) fn question(p: &Prompt) -> &str {
    match p {
        Prompt::Text(t) => t,
        Prompt::Chat(m) => {
            m.iter().rev().find(|m| m.role == Role::User).map_or("", |m| m.content.as_str())
        }
    }
}

/// How the candidates were judged.
pub(crate) struct Judged {
    /// Index of the answer returned.
    pub(crate) best: usize,
    /// The reranker's score of each.
    pub(crate) scores: Vec<f64>,
    /// Each answer's claim.
    pub(crate) claims: Vec<String>,
    pub(crate) vote: VoteSummary,
}

/// Scores `answers` with the reranker and votes on their claims; `by_vote` decides which of
/// the two picks.
pub(crate) fn judge(job: &Job, answers: &[Answer], by_vote: bool) -> Judged {
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
    let q = Question::new(question(&job.request.prompt));
    let texts: Vec<&str> = answers.iter().map(|a| a.text.as_str()).collect();
    let claims: Vec<String> = texts.iter().map(|t| q.claim(t)).collect();
    let verdict = vote(&q, &texts, &scores);
    let reranked = RuleReranker.best(&prompt, &candidates).unwrap_or(0);
    let best = match (&verdict, by_vote) {
        (Some(v), true) => v.winner,
        _ => reranked,
    };
    // How much the answers agreed: the largest cluster's claim and share, whichever answer
    // was returned (best-of-n may return a minority answer it scores higher).
    let summary = match verdict {
        Some(v) => VoteSummary {
            claim: v.claim,
            agreement: v.agreement,
            distinct: v.distinct,
            answers: answers.len(),
        },
        None => VoteSummary { claim: String::new(), agreement: 0.0, distinct: 0, answers: 0 },
    };
    Judged { best, scores, claims, vote: summary }
}

/// Best-of-n (`by_vote` false) or vote (true) over `job.fanout` answers.
pub(crate) async fn run(
    inner: &Arc<Inner>,
    job: &Job,
    started: Vec<Started>,
    tried: Tried,
    t0: Instant,
    by_vote: bool,
) -> Result<JobResult, InferError> {
    let round = Round {
        inner,
        job,
        req: job.request.clone(),
        t0,
        until: tokio::time::Instant::from_std(t0) + job.deadline.mul_f64(0.9),
        want: job.fanout.max(1),
        repeat: if by_vote { Repeat::Queued } else { Repeat::Free },
    };
    let mut got = round.collect(started, tried).await?;
    if got.answers.is_empty() {
        return Err(got.no_answer(if by_vote { "vote" } else { "best_of_n" }));
    }
    let j = judge(job, &got.answers, by_vote);
    let mut attempts: Vec<Attempt> = got.other_attempts(t0);
    for (i, a) in got.answers.iter().enumerate() {
        let outcome = if i == j.best { "won" } else { "lost" };
        inner.metrics.attempt(&a.worker, outcome);
        attempts.push(Attempt {
            score: Some(j.scores[i]),
            claim: Some(j.claims[i].clone()),
            text: job.debug.then(|| a.text.clone()),
            ..a.attempt(outcome)
        });
    }
    let winner = got.answers.swap_remove(j.best);
    inner.learn_agreement(job, &j.vote);
    Ok(JobResult {
        text: winner.text,
        finish_reason: winner.finish,
        usage: winner.usage,
        trace: Trace {
            strategy: if by_vote { Strategy::Vote } else { Strategy::BestOfN },
            winner: Some(winner.worker),
            attempts,
            latency_ms: ms(t0),
            ttft_ms: winner.ttft_ms,
            vote: Some(j.vote),
            ..Trace::default()
        },
        sources: Vec::new(),
    })
}
