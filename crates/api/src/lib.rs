//! The gateway's HTTP API.
//!
//! - `POST /v1/chat/completions` and the legacy `POST /v1/completions` (whole or SSE, `n`
//!   choices, JSON response formats), `GET /v1/models`: OpenAI-compatible, so the
//!   official clients and `curl` work unchanged; nova's routing options ride in an optional
//!   `nova` object.
//! - `POST /api/chat`, `POST /api/generate` (NDJSON streams), `GET /api/tags`, `POST /api/show`,
//!   `GET /api/ps`, `GET /api/version`: Ollama-compatible, for tools that speak only Ollama's
//!   API; nova's routing options ride in Ollama's `options` object.
//! - `POST /submit`: the native endpoint, with the full trace of who answered.
//! - `POST /v1/embeddings`: OpenAI-compatible vectors, all of one request from one worker's
//!   model.
//! - `GET /v1/swarm`: the live cluster view. `GET /metrics`: Prometheus text.
//! - `GET /v1/swarm/events`: the same view, live, as server-sent events (for the dashboard).
//! - `GET /v1/strategies`: the routing strategies, each with a one-line description.
//! - `GET /bundle/latest`, `GET /bundle/latest.sig`: the latest signed update bundle and its
//!   manifest ([`Bundles`] port).
//! - JSON bodies are parsed whatever their `Content-Type`, so `curl -d` works as pasted.
//! - `GET /healthz` (or `/health`): liveness; `GET /`: the web dashboard's page, which holds no data. These are
//!   the only routes without a bearer token.
//!
//! This crate declares the port it needs, [`Inference`]; the node crate implements it.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod auth;
mod body;
mod bundle;
mod dashboard;
mod error;
mod format;
#[doc(hidden)]
pub mod fuzzing;
mod ollama;
mod openai;
mod port;
mod strategies;
mod submit;

use std::sync::Arc;

pub use axum::http::HeaderValue;
use axum::{
    extract::DefaultBodyLimit,
    routing::{get, post},
    Router,
};
pub use bundle::{Bundles, LatestBundle};
pub use error::ApiError;
use nova_proto::Limits;
pub use port::{
    Attempt, Handover, InferError, Inference, Job, JobEvent, JobEvents, JobResult, Retrieval,
    Source, Stage, Trace, VoteSummary,
};
pub use port::{EmbedJob, EmbedResult};
use tokio::sync::Semaphore;

/// The strategy of a request: the client's; else `race` when it set only a fanout (what a
/// fanout alone has always meant); else `auto`.
pub(crate) fn strategy_or_default(
    strategy: Option<nova_proto::Strategy>,
    fanout: Option<usize>,
) -> nova_proto::Strategy {
    match (strategy, fanout) {
        (Some(s), _) => s,
        (None, Some(_)) => nova_proto::Strategy::Race,
        (None, None) => nova_proto::Strategy::Auto,
    }
}

/// Largest request body accepted, in bytes. Prompts are bounded again by [`Limits`].
pub const MAX_BODY: usize = 1 << 20;

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The swarm behind the API.
    pub inference: Arc<dyn Inference>,
    /// sha256 of the bearer token clients must present.
    pub token_digest: [u8; 32],
    /// Bounds on prompts and parameters.
    pub limits: Limits,
    /// Slots for live swarm feeds (`/v1/swarm/events`).
    feeds: Arc<Semaphore>,
    /// Where published update bundles are (`None`: the bundle routes answer 404).
    bundles: Option<Arc<dyn Bundles>>,
    /// Browser origins allowed to call the API (CORS); empty allows none.
    cors_origins: Vec<axum::http::HeaderValue>,
}

/// Most `--cors-origin`s a gateway takes.
pub const MAX_CORS_ORIGINS: usize = 64;

/// Checks one CORS origin as a browser sends it: `scheme://host[:port]`, nothing else (no path,
/// no wildcard: a token-protected API is not for every site).
pub fn parse_cors_origin(s: &str) -> Result<axum::http::HeaderValue, String> {
    let bad = || {
        format!(
            "--cors-origin {s:?}: give an origin as a browser sends it, e.g. http://localhost:3000"
        )
    };
    let (scheme, rest) = s.split_once("://").ok_or_else(bad)?;
    if !matches!(scheme, "http" | "https")
        || rest.is_empty()
        || rest.len() > 253 + 6
        || rest.contains(['/', '?', '#', '*', ' ', '@'])
    {
        return Err(bad());
    }
    axum::http::HeaderValue::from_str(s).map_err(|_| bad())
}

impl AppState {
    /// State for `inference`, accepting requests that carry `token`.
    pub fn new(inference: Arc<dyn Inference>, token: &str, limits: Limits) -> Self {
        Self {
            inference,
            token_digest: auth::digest(token),
            limits,
            feeds: Arc::new(Semaphore::new(dashboard::MAX_FEEDS)),
            bundles: None,
            cors_origins: Vec::new(),
        }
    }

    /// Lets pages from `origins` call the API from a browser (they still need the token).
    pub fn with_cors(mut self, origins: Vec<axum::http::HeaderValue>) -> Self {
        self.cors_origins = origins;
        self
    }

    /// Serves update bundles from `bundles` at `/bundle/latest`.
    pub fn with_bundles(mut self, bundles: Arc<dyn Bundles>) -> Self {
        self.bundles = Some(bundles);
        self
    }
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    let authed = Router::new()
        .route("/v1/chat/completions", post(openai::chat::handle))
        .route("/v1/completions", post(openai::completions::handle))
        .route("/v1/models", get(openai::models::handle))
        .route("/v1/models/{id}", get(openai::models::one))
        .route("/v1/embeddings", post(openai::embeddings::handle))
        .route("/v1/swarm", get(submit::swarm))
        .route("/v1/swarm/events", get(dashboard::swarm_events))
        .route("/v1/strategies", get(strategies::handle))
        .route("/submit", post(submit::handle))
        .route("/metrics", get(submit::metrics))
        .route("/bundle/latest", get(bundle::archive))
        .route("/bundle/latest.sig", get(bundle::manifest))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token));
    let cors = cors(&state.cors_origins);
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/health", get(|| async { "ok\n" }))
        .merge(dashboard::routes())
        .merge(authed)
        .merge(ollama::routes(state.clone()))
        .fallback(|| async { ApiError::NotFound })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state);
    // Outermost, so a browser's preflight (which carries no token) is answered before auth.
    match cors {
        Some(cors) => app.layer(cors),
        None => app,
    }
}

/// The CORS layer for `origins`, or none: without origins no CORS header is ever sent, and
/// browsers keep other sites' pages from reading the API.
fn cors(origins: &[axum::http::HeaderValue]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{header, Method};
    if origins.is_empty() {
        return None;
    }
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(tower_http::cors::AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .max_age(std::time::Duration::from_secs(600)),
    )
}
