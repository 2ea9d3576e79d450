//! `n` choices of one request: `n` samples run on the swarm at once, each routed like a request
//! of its own, so a swarm with idle devices answers them side by side. Shared by chat and
//! legacy completions, which differ only in the shape of their objects ([`Shape`]).

use std::{convert::Infallible, time::Duration};

use axum::response::{
    sse::{Event, KeepAlive, Sse},
    IntoResponse, Response,
};
use futures_util::{
    future::try_join_all,
    stream::{self, Stream, StreamExt},
};
use serde_json::{json, Value};

use super::chat::wait;
use crate::{ApiError, AppState, InferError, Job, JobEvent, JobEvents, JobResult};

/// Most choices one request may ask for: each is a whole request's work (times its fanout).
pub(crate) const MAX_CHOICES: u32 = 8;

/// Checks `n` (absent: 1) against [`MAX_CHOICES`].
pub(crate) fn count(n: Option<u32>) -> Result<u32, ApiError> {
    match n.unwrap_or(1) {
        n @ 1..=MAX_CHOICES => Ok(n),
        n => Err(ApiError::BadRequest(format!("n must be between 1 and {MAX_CHOICES}, got {n}"))),
    }
}

/// Starts the jobs, choice `i` being `jobs[i]`. Resolves once every one has started; the first
/// refusal (a 429, a 400 from a worker) is the answer, and dropping the others cancels them.
pub(crate) async fn start(state: &AppState, jobs: Vec<Job>) -> Result<Vec<JobEvents>, ApiError> {
    let runs = jobs.into_iter().map(|job| state.inference.run(job));
    Ok(try_join_all(runs).await?)
}

/// The `n` samples of `job`: sample `i` has its own task id and, when the request fixes a seed,
/// seed + `i`, so choices differ yet stay reproducible.
pub(crate) fn samples(job: &Job, n: u32) -> Vec<Job> {
    (0..u64::from(n)).map(|i| Job { request: job.request.sample(i), ..job.clone() }).collect()
}

/// Waits for every choice. The first failure fails the request (the rest are cancelled).
pub(crate) async fn wait_all(rxs: Vec<JobEvents>) -> Result<Vec<JobResult>, ApiError> {
    try_join_all(rxs.into_iter().map(wait)).await
}

/// How an endpoint spells its stream objects.
pub(crate) trait Shape: Send + Sync + 'static {
    /// The chunk that opens choice `index` (chat's role chunk), if any.
    fn opening(&self, index: usize) -> Option<Value>;
    /// Text of choice `index`.
    fn text(&self, index: usize, text: &str) -> Value;
    /// A chunk with no text, for nova's extensions (a council's stages).
    fn empty(&self, index: usize) -> Value;
    /// The last chunk of choice `index`: its finish reason.
    fn finish(&self, index: usize, reason: &str) -> Value;
    /// The chunk that carries the request's usage once every choice is done.
    fn usage(&self, usage: Value) -> Value;
}

/// Token counts of all choices: the prompt once per choice, as OpenAI counts it.
pub(crate) fn usage<'a>(results: impl IntoIterator<Item = &'a JobResult>) -> Value {
    let (p, c) = results.into_iter().fold((0u64, 0u64), |(p, c), r| {
        (p + u64::from(r.usage.prompt_tokens), c + u64::from(r.usage.completion_tokens))
    });
    json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c})
}

/// A whole answer of `n` choices: `object` with each result as `choice` spells it, its index
/// and finish reason, usage over all choices, and nova's trace (the first choice's at the top,
/// where a single answer's has always been; each choice's own when there are several).
pub(crate) fn whole(
    object: &str,
    id: &str,
    model: &str,
    results: &[JobResult],
    choice: impl Fn(usize, &JobResult) -> Value,
) -> Value {
    let choices: Vec<Value> = results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut c = choice(i, r);
            c["index"] = json!(i);
            c["finish_reason"] = json!(r.finish_reason.as_openai());
            if results.len() > 1 {
                c["nova"] = nova_object(r);
            }
            c
        })
        .collect();
    json!({
        "id": id,
        "object": object,
        "created": super::chat::now_s(),
        "model": model,
        "choices": choices,
        "usage": usage(results),
        "nova": results.first().map(nova_object),
    })
}

/// nova's extension object of a finished answer: the trace, and the sources of a grounded
/// answer.
pub(crate) fn nova_object(r: &JobResult) -> Value {
    let mut v = json!(r.trace);
    if !r.sources.is_empty() {
        v["sources"] = json!(r.sources);
    }
    v
}

/// The jobs' events as one server-sent event stream: each choice's opening chunk, its text
/// chunks, its last chunk with the finish reason (and nova's trace), then, once every choice is
/// done, an optional usage chunk and `[DONE]`. A failure ends the stream with an error event
/// instead of truncating silently. A job that streams no tokens (best_of_n picks its answer
/// only at the end) sends its whole answer as one text chunk. A council's stages come as
/// chunks with no text and a `nova.stage_started` name or a `nova.stage` object. `prefix` is
/// text each choice starts with (a legacy completion's `echo`).
pub(crate) fn sse(
    rxs: Vec<JobEvents>,
    shape: impl Shape,
    include_usage: bool,
    prefix: Vec<String>,
) -> Response {
    Sse::new(events(rxs, shape, include_usage, prefix))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn data(v: &Value) -> Result<Event, Infallible> {
    Ok(Event::default().data(v.to_string()))
}

/// Where the merged stream stands.
struct Merge<S> {
    events: stream::SelectAll<stream::BoxStream<'static, (usize, Option<JobEvent>)>>,
    shape: S,
    /// Whether choice `i` streamed any text yet.
    streamed: Vec<bool>,
    results: Vec<Option<JobResult>>,
    include_usage: bool,
}

fn events(
    rxs: Vec<JobEvents>,
    shape: impl Shape,
    include_usage: bool,
    prefix: Vec<String>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let n = rxs.len();
    let mut opening = Vec::new();
    for i in 0..n {
        opening.extend(shape.opening(i).map(|v| data(&v)));
        if let Some(p) = prefix.get(i).filter(|p| !p.is_empty()) {
            opening.push(data(&shape.text(i, p)));
        }
    }
    // Each choice's events up to its `Done` or `Error`, or `None` if its channel closes
    // before: a job that ends without either has been dropped by a gateway shutting down.
    let per_choice = rxs.into_iter().enumerate().map(|(i, rx)| {
        stream::unfold(Some(rx), move |rx| async move {
            let mut rx = rx?;
            match rx.recv().await {
                Some(ev @ (JobEvent::Done(_) | JobEvent::Error(_))) => Some(((i, Some(ev)), None)),
                Some(ev) => Some(((i, Some(ev)), Some(rx))),
                None => Some(((i, None), None)),
            }
        })
        .boxed()
    });
    let merge = Merge {
        events: stream::select_all(per_choice),
        shape,
        streamed: vec![false; n],
        results: vec![None; n],
        include_usage,
    };
    let rest = stream::unfold(Some(merge), |m| async move {
        let mut m = m?;
        let (i, ev) = m.events.next().await?;
        let (out, go_on) = m.step(i, ev);
        Some((stream::iter(out), go_on.then_some(m)))
    });
    stream::iter(opening).chain(rest.flatten())
}

impl<S: Shape> Merge<S> {
    /// The chunks one event of choice `i` becomes, and whether the stream goes on.
    fn step(&mut self, i: usize, ev: Option<JobEvent>) -> (Vec<Result<Event, Infallible>>, bool) {
        match ev {
            Some(JobEvent::Token(text)) => {
                self.streamed[i] = true;
                (vec![data(&self.shape.text(i, &text))], true)
            }
            // nova's extension: a council's finished stages ride on chunks with no text,
            // which OpenAI clients pass over.
            Some(JobEvent::Stage(stage)) => {
                let mut c = self.shape.empty(i);
                c["nova"] = json!({ "stage": stage });
                (vec![data(&c)], true)
            }
            Some(JobEvent::StageStarted(name)) => {
                let mut c = self.shape.empty(i);
                c["nova"] = json!({ "stage_started": name });
                (vec![data(&c)], true)
            }
            Some(JobEvent::Done(r)) => {
                let mut out = Vec::new();
                if !self.streamed[i] && !r.text.is_empty() {
                    out.push(data(&self.shape.text(i, &r.text)));
                }
                let mut last = self.shape.finish(i, r.finish_reason.as_openai());
                last["nova"] = nova_object(&r);
                out.push(data(&last));
                self.results[i] = Some(*r);
                if self.results.iter().all(Option::is_some) {
                    if self.include_usage {
                        out.push(data(&self.shape.usage(usage(self.results.iter().flatten()))));
                    }
                    out.push(Ok(Event::default().data("[DONE]")));
                    return (out, false);
                }
                (out, true)
            }
            Some(JobEvent::Error(e)) => (vec![data(&ApiError::from(e).body())], false),
            None => (vec![data(&ApiError::from(InferError::Shutdown).body())], false),
        }
    }
}
