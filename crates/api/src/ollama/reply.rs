//! Ollama's reply objects, whole or streamed as NDJSON: one JSON object per line, text
//! fragments with `done: false`, then a final `done: true` object with the counts and timings.

use std::{convert::Infallible, time::SystemTime};

use axum::{
    body::{Body, Bytes},
    http::header,
    response::{IntoResponse, Response},
    Json,
};
use futures_util::stream::{self, Stream, StreamExt};
use nova_proto::FinishReason;
use serde_json::{json, Value};

use super::{rfc3339, OllamaError};
use crate::{
    openai::{chat::wait, choices::nova_object},
    AppState, InferError, Job, JobEvent, JobEvents, JobResult,
};

/// Which endpoint answers, which decides where text goes in an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `/api/chat`: `message: {role, content}`.
    Chat,
    /// `/api/generate`: `response`.
    Generate,
}

/// How to write the objects of one reply.
#[derive(Debug, Clone)]
pub(super) struct Reply {
    kind: Kind,
    /// The model as the client named it: Ollama echoes the request's name.
    model: String,
}

impl Reply {
    pub(super) fn new(kind: Kind, model: String) -> Self {
        Self { kind, model }
    }

    /// An object carrying `text`.
    fn object(&self, text: &str, done: bool) -> Value {
        let mut v = json!({
            "model": self.model,
            "created_at": rfc3339(SystemTime::now()),
            "done": done,
        });
        match self.kind {
            Kind::Chat => v["message"] = json!({"role": "assistant", "content": text}),
            Kind::Generate => v["response"] = json!(text),
        }
        v
    }

    /// The final object: `text` (the whole answer, or empty after a stream), why it stopped,
    /// Ollama's counts and durations (in nanoseconds) and nova's trace.
    fn done(&self, r: &JobResult, text: &str) -> Value {
        let ns = |ms: f64| (ms.max(0.0) * 1e6).round() as u64;
        let mut v = self.object(text, true);
        v["done_reason"] = json!(match r.finish_reason {
            FinishReason::Stop => "stop",
            FinishReason::Length | FinishReason::ContextFull => "length",
        });
        v["total_duration"] = json!(ns(r.trace.latency_ms));
        // Workers load their model once, at start, never per request.
        v["load_duration"] = json!(0);
        v["prompt_eval_count"] = json!(r.usage.prompt_tokens);
        v["prompt_eval_duration"] = json!(ns(r.usage.prompt_ms));
        v["eval_count"] = json!(r.usage.completion_tokens);
        v["eval_duration"] = json!(ns(r.usage.generation_ms));
        v["nova"] = nova_object(r);
        v
    }

    /// What Ollama answers a request with nothing to generate, which clients send to load a
    /// model: the swarm's models are loaded already, so this only checks one is served.
    pub(super) fn load(
        &self,
        state: &AppState,
        model: Option<&str>,
    ) -> Result<Response, OllamaError> {
        let served = state.inference.models();
        match model {
            Some(m) if !served.iter().any(|s| s == m) => {
                Err(InferError::UnknownModel { model: m.to_string(), available: served.join(", ") }
                    .into())
            }
            None if served.is_empty() => Err(InferError::NoCapacity {
                detail: "no worker serves a model".into(),
                retry_after_s: 5,
            }
            .into()),
            _ => {
                let mut v = self.object("", true);
                v["done_reason"] = json!("load");
                Ok(Json(v).into_response())
            }
        }
    }

    /// Runs `job` and answers: whole, or streamed as NDJSON. Admission errors still get their
    /// status, since a stream is committed only once the job has its first event.
    pub(super) async fn respond(self, state: &AppState, job: Job) -> Result<Response, OllamaError> {
        let stream = job.stream;
        let rx = state.inference.run(job).await?;
        if stream {
            let body = Body::from_stream(self.lines(rx));
            return Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response());
        }
        let r = wait(rx).await?;
        Ok(Json(self.done(&r, &r.text)).into_response())
    }

    /// A job's events as NDJSON lines. Text comes as it is generated; a strategy that picks
    /// its answer only at the end (best_of_n) sends it whole before the final object. A
    /// council's stages ride on empty fragments under `nova`, which also keeps a long stage
    /// from looking like a stalled connection. A failure ends the stream with Ollama's error
    /// line rather than a silent cut.
    fn lines(self, rx: JobEvents) -> impl Stream<Item = Result<Bytes, Infallible>> {
        // The state: the job's events, and whether any text was streamed yet.
        stream::unfold(Some((rx, false)), move |state| {
            let reply = self.clone();
            async move {
                let (mut rx, streamed) = state?;
                let (out, next) = match rx.recv().await {
                    Some(JobEvent::Token(text)) => {
                        (vec![reply.object(&text, false)], Some((rx, true)))
                    }
                    Some(JobEvent::StageStarted(name)) => {
                        let mut v = reply.object("", false);
                        v["nova"] = json!({ "stage_started": name });
                        (vec![v], Some((rx, streamed)))
                    }
                    Some(JobEvent::Stage(stage)) => {
                        let mut v = reply.object("", false);
                        v["nova"] = json!({ "stage": stage });
                        (vec![v], Some((rx, streamed)))
                    }
                    Some(JobEvent::Done(r)) => {
                        let mut out = Vec::with_capacity(2);
                        if !streamed && !r.text.is_empty() {
                            out.push(reply.object(&r.text, false));
                        }
                        out.push(reply.done(&r, ""));
                        (out, None)
                    }
                    Some(JobEvent::Error(e)) => (vec![OllamaError::from(e).body()], None),
                    None => (vec![OllamaError::from(InferError::Shutdown).body()], None),
                };
                Some((stream::iter(out.iter().map(line).collect::<Vec<_>>()), next))
            }
        })
        .flat_map(|lines| lines.map(Ok))
    }
}

/// One NDJSON line.
fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}
