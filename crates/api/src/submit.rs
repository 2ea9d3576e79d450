//! nova's native endpoints: `POST /submit`, `GET /v1/swarm`, `GET /metrics`.

use axum::{extract::State, http::header, response::IntoResponse, Json};
use nova_proto::{normalize_tags, ChatMessage, Prompt, SamplingParams, ValidRequest};
use nova_router::Strategy;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    body::JsonBody,
    openai::chat::{task_id, wait, DEADLINE},
    ApiError, AppState, Job,
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
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    debug: bool,
    /// Seconds the whole request may take.
    deadline_s: Option<u64>,
}

pub(crate) async fn handle(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<SubmitRequest>,
) -> Result<Json<Value>, ApiError> {
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
        strategy: req.strategy.unwrap_or_default(),
        fanout: req.fanout.unwrap_or(2).clamp(1, 16),
        tags,
        debug: req.debug,
        stream: false,
        deadline: deadline.min(std::time::Duration::from_secs(600)),
    };
    let r = wait(state.inference.run(job).await?).await?;
    Ok(Json(json!({
        "text": r.text,
        "finish_reason": r.finish_reason.as_openai(),
        "usage": r.usage,
        "trace": r.trace,
    })))
}

pub(crate) async fn swarm(State(state): State<AppState>) -> Json<nova_proto::SwarmView> {
    Json(state.inference.swarm())
}

pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.inference.metrics())
}
