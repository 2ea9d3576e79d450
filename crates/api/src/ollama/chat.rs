//! `POST /api/chat`.

use axum::{extract::State, response::Response};
use nova_proto::{ChatMessage, Prompt, Role, ValidRequest};
use serde::{de::IgnoredAny, Deserialize};
use serde_json::Value;

use super::{
    model_name,
    options::{must_be_empty, Options, Unsupported},
    reply::{Kind, Reply},
    OllamaError,
};
use crate::{body::JsonBody, openai::chat::task_id, ApiError, AppState};

/// A chat request. Fields not named here (`keep_alive`: workers keep their model loaded) are
/// ignored, as Ollama ignores fields it does not know.
#[derive(Debug, Deserialize)]
pub(super) struct ChatRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    messages: Vec<Message>,
    /// Ollama streams unless told not to.
    stream: Option<bool>,
    options: Option<Options>,
    format: Option<Value>,
    /// The official Python client always sends this, empty when no tools are given.
    tools: Option<Vec<IgnoredAny>>,
    think: Option<Value>,
    logprobs: Option<bool>,
    top_logprobs: Option<u32>,
}

/// A message in Ollama's shape. `thinking` (a thinking model's earlier reasoning) is dropped,
/// as Ollama's own templates drop it from history.
#[derive(Debug, Deserialize)]
struct Message {
    role: Role,
    #[serde(default)]
    content: String,
    images: Option<Vec<IgnoredAny>>,
    tool_calls: Option<Vec<IgnoredAny>>,
}

pub(super) async fn handle(
    State(state): State<AppState>,
    body: Result<JsonBody<ChatRequest>, ApiError>,
) -> Result<Response, OllamaError> {
    let JsonBody(req) = body?;
    let model = model_name(&req.model)?;
    Unsupported { think: &req.think, logprobs: req.logprobs, top_logprobs: req.top_logprobs }
        .check()?;
    must_be_empty(&req.tools, "tools are not supported: nova's models do not call functions")?;
    for (i, m) in req.messages.iter().enumerate() {
        must_be_empty(
            &m.images,
            &format!("messages[{i}].images: nova's models read text only, not images"),
        )?;
        must_be_empty(
            &m.tool_calls,
            &format!("messages[{i}].tool_calls: nova's models do not call functions"),
        )?;
    }
    let reply = Reply::new(Kind::Chat, req.model);
    if req.messages.is_empty() {
        return reply.load(&state, model.as_deref());
    }
    let options = req.options.unwrap_or_default();
    let params = options.sampling(&state.limits, req.format.as_ref())?;
    let messages =
        req.messages.into_iter().map(|m| ChatMessage { role: m.role, content: m.content });
    let prompt = Prompt::Chat(messages.collect());
    let request = ValidRequest::new(task_id(), prompt, params, &state.limits)?;
    let job = options.routing().job(request, model, req.stream.unwrap_or(true), &state.limits)?;
    reply.respond(&state, job).await
}
