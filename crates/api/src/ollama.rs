//! Ollama-compatible endpoints, for tools that speak only Ollama's API (Open WebUI among them).
//!
//! - `POST /api/chat`, `POST /api/generate`: streamed as NDJSON unless `"stream": false`
//!   (Ollama streams by default). Sampling comes in Ollama's `options` object, in Ollama's
//!   names; nova's routing rides in the same object (`strategy`, `fanout`, `tags`, `debug`,
//!   `rag`) and the final object carries the trace in `nova`, which Ollama clients pass over.
//! - `GET /api/tags`, `POST /api/show`, `GET /api/ps`, `GET /api/version`.
//! - Errors are Ollama's `{"error": "..."}`, also as the last line of a stream that failed.
//! - Model names may carry Ollama's default tag (`smollm2-135m:latest`); `nova` is any model.
//!
//! What nova cannot do (JSON mode and schemas, images, tools, thinking, log probabilities,
//! suffixes, templates, `context`) is refused with a 400 that says so rather than ignored, so
//! a client never mistakes an unconstrained answer for a constrained one. Other Ollama
//! endpoints (pull, create, embed, ...) answer 404 with what nova serves instead.

mod chat;
mod generate;
mod models;
mod options;
mod reply;
#[cfg(test)]
mod tests;

use std::{
    sync::OnceLock,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    http::{StatusCode, Uri},
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::{any, get, post},
    Json, Router,
};
use nova_proto::ValidationError;
use serde_json::json;

use crate::{auth, ApiError, AppState, InferError};

/// Most bytes of a model name. Ollama's names are tens of bytes; the bound keeps an absurd one
/// out of logs and error messages.
const MAX_MODEL_BYTES: usize = 256;

/// The name that asks for any model, as in the OpenAI API.
const ANY_MODEL: &str = "nova";

/// The tag Ollama assumes when a name has none.
const DEFAULT_TAG: &str = ":latest";

/// The Ollama routes, behind the bearer token like every route with data.
pub(crate) fn routes(state: AppState) -> Router<AppState> {
    // Fixes the models' `modified_at` to the gateway's start rather than the first listing.
    started();
    Router::new()
        .route("/api/chat", post(chat::handle))
        .route("/api/generate", post(generate::handle))
        .route("/api/tags", get(models::tags))
        .route("/api/show", post(models::show))
        .route("/api/ps", get(models::ps))
        .route("/api/version", get(models::version))
        .route("/api/{*rest}", any(not_implemented))
        .route_layer(from_fn_with_state(state, auth::require_token_ollama))
}

/// Why an Ollama request failed, rendered as Ollama renders errors: `{"error": "..."}`.
#[derive(Debug)]
pub(crate) enum OllamaError {
    /// Whatever the rest of the API would answer, with its status (a bound broken is a 400
    /// here: Ollama has no 422, and its clients treat every 4xx alike).
    Api(ApiError),
    /// An Ollama endpoint nova does not implement, with what to do instead (404).
    NotImplemented(String),
}

impl From<ApiError> for OllamaError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<ValidationError> for OllamaError {
    fn from(e: ValidationError) -> Self {
        Self::Api(e.into())
    }
}

impl From<InferError> for OllamaError {
    fn from(e: InferError) -> Self {
        Self::Api(e.into())
    }
}

impl OllamaError {
    /// A request nova understood but will not serve, with the reason.
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::Api(ApiError::BadRequest(message.into()))
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Api(ApiError::Validation(_)) => StatusCode::BAD_REQUEST,
            Self::Api(e) => e.status(),
            Self::NotImplemented(_) => StatusCode::NOT_FOUND,
        }
    }

    fn message(&self) -> String {
        match self {
            // Ollama's own wording starts this way, and tools look for "not found".
            Self::Api(ApiError::Infer(InferError::UnknownModel { model, available })) => {
                let available = if available.is_empty() { "none" } else { available };
                format!("model {model:?} not found: no node serves it (available: {available})")
            }
            Self::Api(e) => e.to_string(),
            Self::NotImplemented(m) => m.clone(),
        }
    }

    /// The error as one NDJSON line's object, for a stream that already answered 200.
    pub(crate) fn body(&self) -> serde_json::Value {
        json!({ "error": self.message() })
    }
}

impl IntoResponse for OllamaError {
    fn into_response(self) -> Response {
        let mut resp = (self.status(), Json(self.body())).into_response();
        if let Self::Api(e) = &self {
            e.add_headers(resp.headers_mut());
        }
        resp
    }
}

async fn not_implemented(uri: Uri) -> OllamaError {
    OllamaError::NotImplemented(format!(
        "nova does not implement {}: it serves the models its workers load (`nova model pull` \
         on a device) and speaks /api/chat, /api/generate, /api/tags, /api/show, /api/ps and \
         /api/version",
        uri.path()
    ))
}

/// The model a client named, as the swarm knows it: Ollama's default tag dropped, and `None`
/// for `nova` (any model).
fn model_name(raw: &str) -> Result<Option<String>, OllamaError> {
    if raw.len() > MAX_MODEL_BYTES {
        let len = raw.len();
        return Err(OllamaError::bad(format!("model: at most {MAX_MODEL_BYTES} bytes, got {len}")));
    }
    let name = raw.strip_suffix(DEFAULT_TAG).unwrap_or(raw);
    if name.is_empty() {
        return Err(OllamaError::bad("model is required (`nova` asks for any model)"));
    }
    Ok((name != ANY_MODEL).then(|| name.to_string()))
}

/// A model's name as listed: with the default tag, as Ollama lists its own, so a client that
/// sends back exactly what it was shown is understood.
fn listed_name(model: &str) -> String {
    format!("{model}{DEFAULT_TAG}")
}

/// When the gateway started serving the Ollama routes.
fn started() -> SystemTime {
    static STARTED: OnceLock<SystemTime> = OnceLock::new();
    *STARTED.get_or_init(SystemTime::now)
}

/// `t` in RFC 3339, UTC, to the millisecond: how Ollama writes times.
fn rfc3339(t: SystemTime) -> String {
    let ms = t.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let (days, ms_of_day) = ((ms / 86_400_000) as i64, (ms % 86_400_000) as u64);
    let (y, m, d) = nova_proto::calendar::civil_from_days(days);
    let (h, min, s, frac) =
        (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60, ms_of_day / 1000 % 60, ms_of_day % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{frac:03}Z")
}
