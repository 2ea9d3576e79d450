//! nova's native endpoints: `POST /submit`, `GET /v1/swarm`, `GET /metrics`.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::State,
    http::header,
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    Json,
};
use futures_util::stream::{self, Stream};
use nova_proto::{normalize_tags, ChatMessage, Prompt, SamplingParams, Strategy, ValidRequest};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    body::JsonBody,
    openai::chat::{task_id, wait, DEADLINE},
    ApiError, AppState, InferError, Job, JobEvent, JobEvents, JobResult,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitRequest {
    /// Raw text, sent as one user message.
    prompt: Option<String>,
    /// A conversation (instead of `prompt`).
    messages: Option<Vec<ChatMessage>>,
    #[serde(default)]
    params: SamplingParams,
    model: Option<String>,
    fanout: Option<usize>,
    strategy: Option<Strategy>,
    #[serde(default, deserialize_with = "nova_proto::deserialize_tags")]
    tags: Vec<String>,
    #[serde(default)]
    debug: bool,
    /// Seconds the whole request may take.
    deadline_s: Option<u64>,
    /// Answer as server-sent events: `stage_started` and `stage` (a council's stages as they
    /// start and end), `token`, then `done` (the whole result, as without streaming) or
    /// `error`.
    #[serde(default)]
    stream: bool,
    /// Answer from the documents nodes share; the answer lists the passages it was given in
    /// `sources`.
    #[serde(default)]
    rag: bool,
}

pub(crate) async fn handle(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<SubmitRequest>,
) -> Result<Response, ApiError> {
    let messages = match (req.prompt, req.messages) {
        (Some(p), None) => vec![ChatMessage::user(p)],
        (None, Some(m)) => m,
        _ => {
            return Err(ApiError::BadRequest("give exactly one of `prompt` and `messages`".into()))
        }
    };
    let tags = normalize_tags(&req.tags, &state.limits)?;
    let request = ValidRequest::new(task_id(), Prompt::Chat(messages), req.params, &state.limits)?;
    let deadline = req.deadline_s.map(std::time::Duration::from_secs).unwrap_or(DEADLINE);
    let job = Job {
        request,
        model: req.model.filter(|m| m != "nova"),
        strategy: crate::strategy_or_default(req.strategy, req.fanout),
        fanout: req.fanout.unwrap_or(2).clamp(1, 16),
        tags,
        debug: req.debug,
        stream: req.stream,
        deadline: deadline.min(std::time::Duration::from_secs(600)),
        rag: req.rag,
    };
    let rx = state.inference.run(job).await?;
    if req.stream {
        return Ok(Sse::new(events(rx))
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
            .into_response());
    }
    Ok(Json(result(&wait(rx).await?)).into_response())
}

fn result(r: &JobResult) -> Value {
    json!({
        "text": r.text,
        "finish_reason": r.finish_reason.as_openai(),
        "usage": r.usage,
        "trace": r.trace,
        "sources": r.sources,
    })
}

fn event(name: &str, v: &Value) -> Result<Event, Infallible> {
    Ok(Event::default().event(name).data(v.to_string()))
}

/// A job's events as named SSE events; the stream ends after `done` or `error`.
fn events(rx: JobEvents) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        let (ev, more) = match rx.recv().await {
            Some(JobEvent::Token(text)) => (event("token", &json!({ "text": text })), true),
            Some(JobEvent::StageStarted(name)) => {
                (event("stage_started", &json!({ "name": name })), true)
            }
            Some(JobEvent::Stage(stage)) => (event("stage", &json!(stage)), true),
            Some(JobEvent::Done(r)) => (event("done", &result(&r)), false),
            Some(JobEvent::Error(e)) => (event("error", &ApiError::from(e).body()), false),
            None => (event("error", &ApiError::from(InferError::Shutdown).body()), false),
        };
        Some((ev, more.then_some(rx)))
    })
}

pub(crate) async fn swarm(State(state): State<AppState>) -> Json<nova_proto::SwarmView> {
    Json(state.inference.swarm())
}

pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.inference.metrics())
}
