//! `POST /api/generate`.

use axum::{extract::State, response::Response};
use nova_proto::{ChatMessage, Prompt, ValidRequest};
use serde::{de::IgnoredAny, Deserialize};
use serde_json::Value;

use super::{
    model_name,
    options::{must_be_empty, Options, Unsupported},
    reply::{Kind, Reply},
    OllamaError,
};
use crate::{body::JsonBody, openai::chat::task_id, ApiError, AppState};

/// A completion request. Fields not named here (`keep_alive`) are ignored, as in Ollama.
#[derive(Debug, Deserialize)]
pub(super) struct GenerateRequest {
    #[serde(default)]
    model: String,
    prompt: Option<String>,
    system: Option<String>,
    /// The prompt is sent to the model as is, without its chat template.
    raw: Option<bool>,
    suffix: Option<String>,
    template: Option<String>,
    context: Option<Vec<IgnoredAny>>,
    images: Option<Vec<IgnoredAny>>,
    /// Ollama streams unless told not to.
    stream: Option<bool>,
    options: Option<Options>,
    format: Option<Value>,
    think: Option<Value>,
    logprobs: Option<bool>,
    top_logprobs: Option<u32>,
}

pub(super) async fn handle(
    State(state): State<AppState>,
    body: Result<JsonBody<GenerateRequest>, ApiError>,
) -> Result<Response, OllamaError> {
    let JsonBody(req) = body?;
    let model = model_name(&req.model)?;
    Unsupported { think: &req.think, logprobs: req.logprobs, top_logprobs: req.top_logprobs }
        .check()?;
    must_be_empty(&req.images, "images: nova's models read text only, not images")?;
    must_be_empty(&req.context, "context is not supported: send the conversation to /api/chat")?;
    if req.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(OllamaError::bad("suffix (fill in the middle) is not supported"));
    }
    if req.template.as_deref().is_some_and(|t| !t.is_empty()) {
        return Err(OllamaError::bad(
            "template is not supported: each worker applies its model's own chat template; \
             send an already templated prompt with raw: true instead",
        ));
    }
    let (prompt, system) = (req.prompt.unwrap_or_default(), req.system.unwrap_or_default());
    let raw = req.raw.unwrap_or(false);
    if raw && !system.is_empty() {
        return Err(OllamaError::bad(
            "system cannot be combined with raw: a raw prompt is sent as is",
        ));
    }
    let reply = Reply::new(Kind::Generate, req.model);
    if prompt.is_empty() && system.is_empty() {
        return reply.load(&state, model.as_deref());
    }
    let options = req.options.unwrap_or_default();
    let params = options.sampling(&state.limits, req.format.as_ref())?;
    let prompt = if raw {
        Prompt::Text(prompt)
    } else {
        let mut messages = Vec::with_capacity(2);
        if !system.is_empty() {
            messages.push(ChatMessage::system(system));
        }
        if !prompt.is_empty() {
            messages.push(ChatMessage::user(prompt));
        }
        Prompt::Chat(messages)
    };
    let request = ValidRequest::new(task_id(), prompt, params, &state.limits)?;
    let job = options.routing().job(request, model, req.stream.unwrap_or(true), &state.limits)?;
    reply.respond(&state, job).await
}
