//! Council: members answer, review each other anonymously, and a chairman writes the answer.
//!
//! 1. **answer**: K members (the workers the job started on) answer the question. Members
//!    that fail are dropped; the council goes on with the rest, down to one answer.
//! 2. **rank**: each member ranks the *others'* answers, shown under letters in an order
//!    shuffled per member; the rankings are aggregated by Borda count. With two answers or
//!    fewer there is nothing to rank without self-votes, and the stage says it was skipped.
//! 3. **synthesize**: the chairman (the member with the best win rate for the job's tags,
//!    then the fastest answerer) writes the final answer from the answers, best-ranked first.
//!    If it fails or times out, the next member takes over: a whole answer starts again on
//!    the next member; a streamed one is continued by another worker from the text already
//!    sent (see `race::streamed`). One answer alone is returned as it is.
//!
//! Each stage ends with a `JobEvent::Stage`, which streamed clients receive as it happens,
//! and the trace keeps every stage's attempts with their roles.

use std::{sync::Arc, time::Instant};

use nova_api::{Attempt, InferError, Job, JobEvent, JobResult, Stage, Trace};
use nova_proto::{ChatMessage, Limits, Prompt, SamplingParams, Strategy, ValidRequest};
use nova_router::borda::{self, Ballot};
use tokio::{sync::mpsc, task::JoinSet};

use super::{
    attempt::{ms, whole, Answer},
    dispatch::{Started, Tried},
    ensemble::question,
    race,
    round::{Repeat, Round},
    Inner,
};

/// Characters of each answer shown to rankers and the chairman, at most.
const MAX_SHOWN_CHARS: usize = 1200;
/// Characters of all answers in one stage prompt together: a big council shows each answer
/// shorter, so the prompt (about 1,300 tokens with the question) still fits a small device's
/// context window with room to answer. Whatever the members wrote and however many they are.
const MAX_ANSWERS_CHARS: usize = 3600;
/// Characters of the question repeated in stage prompts.
const MAX_QUESTION_CHARS: usize = 1200;

/// Characters each of `n` answers may show.
fn per_answer(n: usize) -> usize {
    MAX_SHOWN_CHARS.min(MAX_ANSWERS_CHARS / n.max(1))
}
/// Tokens a ranking may take ("B, A, C" is a handful).
const RANK_TOKENS: u32 = 16;

fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A stage prompt as a request: one user message, the job's limits, greedy unless `params`.
fn stage_request(
    job: &Job,
    salt: u64,
    text: String,
    params: SamplingParams,
) -> Option<ValidRequest> {
    let id = nova_proto::TaskId(job.request.id.0.wrapping_add(salt.wrapping_mul(0x5851_F42D)));
    ValidRequest::new(id, Prompt::Chat(vec![ChatMessage::user(text)]), params, &Limits::default())
        .map_err(|e| tracing::warn!(error = %e, "council stage prompt refused"))
        .ok()
}

/// The prompt asking one member to rank `shown` answers (already in its shuffled order).
fn ranking_prompt(q: &str, shown: &[&str]) -> String {
    let mut p = format!(
        "Question: {}\n\nHere are answers written by other assistants.\n\n",
        clip(q, MAX_QUESTION_CHARS)
    );
    for (i, a) in shown.iter().enumerate() {
        p.push_str(&format!(
            "Answer {}: {}\n\n",
            borda::label(i),
            clip(a.trim(), per_answer(shown.len()))
        ));
    }
    let example: Vec<String> =
        (0..shown.len()).rev().map(|i| borda::label(i).to_string()).collect();
    p.push_str(&format!(
        "Rank the answers from most to least correct. Reply with the letters only, best first, \
         separated by commas, for example: {}",
        example.join(", ")
    ));
    p
}

/// The chairman's prompt: the answers, best-ranked first.
fn synthesis_prompt(q: &str, ranked: &[&str]) -> String {
    let mut p = format!(
        "Question: {}\n\nSeveral assistants answered it. Their answers, the best-rated first:\n\n",
        clip(q, MAX_QUESTION_CHARS)
    );
    for (i, a) in ranked.iter().enumerate() {
        p.push_str(&format!("{}. {}\n\n", i + 1, clip(a.trim(), per_answer(ranked.len()))));
    }
    p.push_str("Using them, write the single best final answer to the question. Be brief.");
    p
}

/// A deterministic shuffle of `0..n` for ranker `member` of job `seed` (Fisher-Yates over
/// splitmix64), so a run can be replayed from its trace.
fn shuffled(n: usize, seed: u64, member: usize) -> Vec<usize> {
    let mut x = seed ^ (member as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = || {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

/// The trace entry of a worker that never started its part (refused, gone, out of time).
fn not_started(worker: &str, outcome: &str, t0: Instant, role: &str) -> Attempt {
    Attempt {
        worker: worker.into(),
        outcome: outcome.into(),
        latency_ms: ms(t0),
        role: Some(role.into()),
        ..Attempt::default()
    }
}

struct Council<'a> {
    inner: &'a Arc<Inner>,
    job: &'a Job,
    tx: &'a mpsc::Sender<JobEvent>,
    t0: Instant,
    stages: Vec<Stage>,
}

impl Council<'_> {
    fn until(&self, share: f64) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.t0) + self.job.deadline.mul_f64(share)
    }

    /// Says a stage started (a streaming client gets its 200 and this at once).
    async fn start_stage(&self, name: &'static str) {
        let _ = self.tx.send(JobEvent::StageStarted(name)).await;
    }

    /// Ends the stage `name` that began at `began` (ms into the job): into the trace, and out to
    /// a streaming client.
    async fn end_stage(
        &mut self,
        name: &str,
        began: f64,
        attempts: Vec<Attempt>,
        note: String,
        scores: Vec<(String, f64)>,
    ) {
        let at_ms = ms(self.t0);
        let stage =
            Stage { name: name.into(), at_ms, latency_ms: at_ms - began, attempts, note, scores };
        let _ = self.tx.send(JobEvent::Stage(Box::new(stage.clone()))).await;
        self.stages.push(stage);
    }

    /// Stage 1.
    async fn answer(
        &mut self,
        started: Vec<Started>,
        tried: Tried,
    ) -> Result<Vec<Answer>, InferError> {
        let began = ms(self.t0);
        self.start_stage("answer").await;
        let round = Round {
            inner: self.inner,
            job: self.job,
            req: self.job.request.clone(),
            t0: self.t0,
            until: self.until(0.45),
            want: self.job.fanout.max(1),
            repeat: Repeat::No,
        };
        let got = round.collect(started, tried).await?;
        let mut attempts = got.other_attempts(self.t0);
        for (i, a) in got.answers.iter().enumerate() {
            attempts.push(Attempt {
                role: Some(borda::label(i).to_string()),
                text: self.job.debug.then(|| a.text.clone()),
                ..a.attempt("answered")
            });
        }
        let n = got.answers.len();
        let dropped = got.failures.len() + got.cancelled.len();
        let note = match dropped {
            0 => format!("{n} members answered"),
            d => format!("{n} members answered; {d} failed or ran out of time and were dropped"),
        };
        self.end_stage("answer", began, attempts, note, Vec::new()).await;
        if got.answers.is_empty() {
            return Err(got.no_answer("council"));
        }
        Ok(got.answers)
    }

    /// Stage 2: the answers' indices, best first.
    async fn rank(&mut self, answers: &[Answer]) -> Vec<usize> {
        let n = answers.len();
        let began = ms(self.t0);
        if n <= 2 {
            let note = format!(
                "skipped: {n} answer{} leave nothing to rank without ranking one's own",
                if n == 1 { "" } else { "s" }
            );
            self.end_stage("rank", began, Vec::new(), note, Vec::new()).await;
            return (0..n).collect();
        }
        self.start_stage("rank").await;
        let q = question(&self.job.request.prompt).to_string();
        let until = self.until(0.7);
        let mut set = JoinSet::new();
        let mut shown_by: Vec<Vec<usize>> = Vec::new();
        let mut attempts = Vec::new();
        for (m, author) in answers.iter().enumerate() {
            // Never its own answer, in an order of its own.
            let others: Vec<usize> = (0..n).filter(|i| *i != m).collect();
            let order: Vec<usize> = shuffled(others.len(), self.job.request.id.0, m)
                .into_iter()
                .map(|k| others[k])
                .collect();
            let texts: Vec<&str> = order.iter().map(|i| answers[*i].text.as_str()).collect();
            let params = SamplingParams {
                temperature: 0.0,
                max_tokens: RANK_TOKENS,
                ..SamplingParams::default()
            };
            let Some(req) =
                stage_request(self.job, 100 + m as u64, ranking_prompt(&q, &texts), params)
            else {
                continue;
            };
            match self.inner.start_on(self.job, &author.worker, &req, until).await {
                Ok(s) => {
                    let t0 = self.t0;
                    let idx = shown_by.len();
                    set.spawn(async move { (idx, whole(s, t0).await) });
                    shown_by.push(order);
                }
                Err(e) => attempts.push(not_started(&author.worker, e.kind(), self.t0, "ranker")),
            }
        }
        let mut ballots = Vec::new();
        loop {
            let joined = tokio::select! {
                j = set.join_next() => j,
                _ = tokio::time::sleep_until(until) => None,
            };
            let Some(joined) = joined else { break };
            let Ok((idx, result)) = joined else { continue };
            match result {
                Ok(a) => {
                    let shown = &shown_by[idx];
                    let ranked: Vec<usize> = borda::parse_ranking(&a.text, shown.len())
                        .into_iter()
                        .map(|k| shown[k])
                        .collect();
                    attempts.push(Attempt {
                        role: Some("ranker".into()),
                        text: self.job.debug.then(|| a.text.clone()),
                        ..a.attempt(if ranked.is_empty() { "unreadable" } else { "ranked" })
                    });
                    ballots.push(Ballot { shown: shown.clone(), ranked });
                }
                Err(f) => {
                    self.inner.metrics.attempt(&f.worker, f.kind);
                    attempts.push(Attempt { role: Some("ranker".into()), ..f.attempt() });
                }
            }
        }
        // Rankers still running past the stage's budget are cancelled with the set.
        set.abort_all();
        let scores = borda::borda(n, &ballots);
        let order = borda::order(&scores);
        let read = ballots.iter().filter(|b| !b.ranked.is_empty()).count();
        let note = format!(
            "{} of {n} members ranked ({read} readable); Borda order: {}",
            ballots.len(),
            order.iter().map(|i| borda::label(*i).to_string()).collect::<Vec<_>>().join(" > ")
        );
        let scores = (0..n).map(|i| (borda::label(i).to_string(), scores[i])).collect();
        self.end_stage("rank", began, attempts, note, scores).await;
        order
    }

    /// Members in the order they chair: best win rate over the job's tags, then fastest.
    fn chairs(&self, answers: &[Answer]) -> Vec<usize> {
        let tags = super::bounded_tags(self.job);
        let rate = |w: &str| -> f64 {
            if tags.is_empty() {
                return 0.0;
            }
            let now = crate::now_ms();
            let rates = super::lock(&self.inner.rates);
            tags.iter().map(|t| rates.rate(w, t, now)).sum::<f64>() / tags.len() as f64
        };
        let mut idx: Vec<(f64, f64, usize)> =
            answers.iter().enumerate().map(|(i, a)| (rate(&a.worker), a.latency_ms, i)).collect();
        idx.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.total_cmp(&b.1)));
        idx.into_iter().map(|x| x.2).collect()
    }

    /// Stage 3, whole: the chairs in turn until one writes the answer.
    async fn synthesize(
        &mut self,
        answers: &[Answer],
        order: &[usize],
    ) -> Result<JobResult, InferError> {
        let began = ms(self.t0);
        self.start_stage("synthesize").await;
        let q = question(&self.job.request.prompt).to_string();
        let ranked: Vec<&str> = order.iter().map(|i| answers[*i].text.as_str()).collect();
        let params = self.job.request.params.clone();
        // A grounded council's chairman sees the sources too, so it can check the answers
        // against them (rankers do not: their prompt is for letters only).
        let req = stage_request(self.job, 200, synthesis_prompt(&q, &ranked), params)
            .map(|mut r| {
                r.context = self.job.request.context.clone();
                r
            })
            .ok_or_else(|| InferError::Failed {
                message: "the synthesis prompt is too large".into(),
            })?;
        let until = self.until(1.0);
        let chairs = self.chairs(answers);
        if self.job.stream {
            return self.synthesize_streamed(answers, &chairs, &req, began).await;
        }
        let mut attempts = Vec::new();
        for &c in &chairs {
            let chair = &answers[c].worker;
            let started = match self.inner.start_on(self.job, chair, &req, until).await {
                Ok(s) => s,
                Err(e) => {
                    attempts.push(not_started(chair, e.kind(), self.t0, "chairman"));
                    continue;
                }
            };
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, whole(started, self.t0)).await {
                Ok(Ok(a)) => {
                    attempts.push(Attempt { role: Some("chairman".into()), ..a.attempt("won") });
                    let note = format!("chairman {} wrote the answer", a.worker);
                    self.end_stage("synthesize", began, attempts, note, Vec::new()).await;
                    return Ok(self.result(
                        a.text,
                        a.finish,
                        a.usage,
                        a.worker,
                        a.ttft_ms,
                        Vec::new(),
                    ));
                }
                Ok(Err(f)) => {
                    self.inner.metrics.attempt(&f.worker, f.kind);
                    tracing::warn!(worker = %f.worker, error = %f.message, "chairman failed; the next member takes over");
                    attempts.push(Attempt { role: Some("chairman".into()), ..f.attempt() });
                }
                Err(_) => {
                    attempts.push(not_started(chair, "timeout", self.t0, "chairman"));
                    break;
                }
            }
        }
        let note = "no member could write the answer".to_string();
        self.end_stage("synthesize", began, attempts, note, Vec::new()).await;
        Err(InferError::Failed { message: "council: every chairman failed".into() })
    }

    /// Stage 3, streamed: the first chair that accepts streams it, with hand-over.
    async fn synthesize_streamed(
        &mut self,
        answers: &[Answer],
        chairs: &[usize],
        req: &ValidRequest,
        began: f64,
    ) -> Result<JobResult, InferError> {
        let until = self.until(1.0);
        let tried = Tried::default();
        let mut started = None;
        let mut attempts = Vec::new();
        for &c in chairs {
            let chair = &answers[c].worker;
            tried.insert(chair);
            match self.inner.start_on(self.job, chair, req, until).await {
                Ok(s) => {
                    started = Some(s);
                    break;
                }
                Err(e) => attempts.push(not_started(chair, e.kind(), self.t0, "chairman")),
            }
        }
        let Some(s) = started else {
            return Err(InferError::Failed { message: "council: no member could chair".into() });
        };
        let r = race::streamed(self.inner, self.job, req, vec![s], tried, self.tx, self.t0).await;
        let (note, result) = match r {
            Ok(mut r) => {
                for a in &mut r.trace.attempts {
                    a.role = Some("chairman".into());
                }
                attempts.append(&mut r.trace.attempts);
                let who = r.trace.winner.clone().unwrap_or_default();
                let note = match r.trace.handovers.len() {
                    0 => format!("chairman {who} wrote the answer"),
                    h => format!("{h} hand-over(s); {who} finished the answer"),
                };
                (note, Ok(r))
            }
            Err(e) => ("no member could finish the answer".to_string(), Err(e)),
        };
        self.end_stage("synthesize", began, attempts, note, Vec::new()).await;
        let r = result?;
        Ok(self.result(
            r.text,
            r.finish_reason,
            r.usage,
            r.trace.winner.unwrap_or_default(),
            r.trace.ttft_ms,
            r.trace.handovers,
        ))
    }

    fn result(
        &mut self,
        text: String,
        finish_reason: nova_proto::FinishReason,
        usage: nova_proto::Usage,
        winner: String,
        ttft_ms: Option<f64>,
        handovers: Vec<nova_api::Handover>,
    ) -> JobResult {
        let stages = std::mem::take(&mut self.stages);
        let attempts = stages.iter().flat_map(|s| s.attempts.iter().cloned()).collect();
        JobResult {
            text,
            finish_reason,
            usage,
            trace: Trace {
                strategy: Strategy::Council,
                winner: Some(winner),
                attempts,
                latency_ms: ms(self.t0),
                ttft_ms,
                handovers,
                stages,
                ..Trace::default()
            },
            sources: Vec::new(),
        }
    }
}

pub(crate) async fn run(
    inner: &Arc<Inner>,
    job: &Job,
    started: Vec<Started>,
    tried: Tried,
    tx: &mpsc::Sender<JobEvent>,
    t0: Instant,
) -> Result<JobResult, InferError> {
    let mut c = Council { inner, job, tx, t0, stages: Vec::new() };
    let answers = c.answer(started, tried).await?;
    let order = c.rank(&answers).await;
    if answers.len() == 1 {
        let a = &answers[0];
        let began = ms(t0);
        let note = "one answer: returned as it is".to_string();
        c.end_stage("synthesize", began, Vec::new(), note, Vec::new()).await;
        if job.stream {
            let _ = tx.send(JobEvent::Token(a.text.clone())).await;
        }
        return Ok(c.result(
            a.text.clone(),
            a.finish,
            a.usage,
            a.worker.clone(),
            a.ttft_ms,
            Vec::new(),
        ));
    }
    c.synthesize(&answers, &order).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffles_are_permutations_that_differ_between_members() {
        for n in 0..8 {
            let mut s = shuffled(n, 42, 1);
            s.sort_unstable();
            assert_eq!(s, (0..n).collect::<Vec<_>>());
        }
        let orders: std::collections::HashSet<Vec<usize>> =
            (0..8).map(|m| shuffled(5, 7, m)).collect();
        assert!(orders.len() > 1, "members see different orders");
        assert_eq!(shuffled(5, 7, 3), shuffled(5, 7, 3), "reproducible");
    }

    #[test]
    fn stage_prompts_are_bounded_and_anonymous() {
        let long = "x".repeat(100_000);
        let p = ranking_prompt(&long, &[&long, &long]);
        assert!(p.len() < MAX_QUESTION_CHARS + 2 * MAX_SHOWN_CHARS + 500);
        // Sixteen long answers share the same budget.
        let many: Vec<&str> = vec![long.as_str(); 16];
        for p in [ranking_prompt(&long, &many), synthesis_prompt(&long, &many)] {
            assert!(p.len() < MAX_QUESTION_CHARS + MAX_ANSWERS_CHARS + 1000, "{}", p.len());
        }
        let p = ranking_prompt("What is 2+2?", &["4", "5"]);
        assert!(p.contains("Answer A: 4") && p.contains("Answer B: 5"), "{p}");
        assert!(p.ends_with("B, A"), "{p}");
        let p = synthesis_prompt("q", &["best", "worst"]);
        assert!(p.find("best").expect("best") < p.find("worst").expect("worst"));
        assert_eq!(clip("héllo", 2), "hé");
    }
}
