//! Entry points for the fuzz targets under `fuzz/`; not part of the API.
//!
//! The request-body target drives the real router (auth, body extraction, parsing and
//! validation) in front of a swarm that takes nothing, so it exercises exactly what a client
//! reaches. What the swarm is handed is checked too: an admitted request must cross the wire
//! to a worker unchanged and still pass validation there.

use std::sync::Arc;

use axum::{body::Body, http::Request};
use futures_util::future::BoxFuture;
use nova_proto::{normalize_tags, Limits, SwarmView, ValidRequest};
use tower::ServiceExt as _;

use crate::{router, AppState, EmbedJob, EmbedResult, InferError, Inference, Job, JobEvents};

const TOKEN: &str = "fuzz";

/// A swarm that checks each job it is handed and then refuses it as shutting down (503).
struct Refuse;

impl Inference for Refuse {
    fn run(&self, job: Job) -> BoxFuture<'_, Result<JobEvents, InferError>> {
        check_admitted(&job);
        Box::pin(async { Err(InferError::Shutdown) })
    }

    fn models(&self) -> Vec<String> {
        Vec::new()
    }

    fn swarm(&self) -> SwarmView {
        SwarmView::default()
    }

    fn metrics(&self) -> String {
        String::new()
    }

    fn embed(&self, job: EmbedJob) -> BoxFuture<'_, Result<EmbedResult, InferError>> {
        check_embed(&job);
        Box::pin(async { Err(InferError::Shutdown) })
    }
}

/// Panics (a finding) if an admitted embedding request breaks its bounds, does not survive the
/// trip to a worker, or would not fit one wire frame.
fn check_embed(job: &EmbedJob) {
    let limits = Limits::default();
    let r = &job.request;
    let wire = serde_json::to_vec(r).expect("an admitted request serializes");
    assert!(
        wire.len() <= 1 << 20,
        "an admitted embedding request is {} bytes on the wire",
        wire.len()
    );
    let back: nova_proto::EmbedRequest = serde_json::from_slice(&wire).expect("and deserializes");
    assert_eq!(&back, r, "the wire changes an admitted request");
    let again = back.check(&limits);
    assert!(again.is_ok(), "an admitted request fails validation on the worker: {again:?}");
    assert!(job.model.as_ref().is_none_or(|m| m.len() <= nova_proto::embed::MAX_EMBED_MODEL_BYTES));
}

/// Panics (a finding) if an admitted job is out of bounds or its request does not survive the
/// trip to a worker, where it is checked again.
fn check_admitted(job: &Job) {
    let limits = Limits::default();
    assert_eq!(normalize_tags(&job.tags, &limits).as_ref(), Ok(&job.tags), "tags not normalised");
    let r = &job.request;
    let wire = serde_json::to_vec(r).expect("an admitted request serializes");
    let back: ValidRequest = serde_json::from_slice(&wire).expect("and deserializes");
    assert_eq!(&back, r, "the wire changes an admitted request");
    let again = back.check(&limits);
    assert!(again.is_ok(), "an admitted request fails validation on the worker: {again:?}");
}

/// Posts `body`, with no `Content-Type` and the right bearer token, to `path` on the API's
/// router and returns the status. Client mistakes must be 4xx; a request that passes every
/// check reaches the swarm, which answers 503.
pub async fn post(path: &str, body: Vec<u8>) -> u16 {
    let app = router(AppState::new(Arc::new(Refuse), TOKEN, Limits::default()));
    let req = Request::post(path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from(body))
        .expect("a static request is valid");
    match app.oneshot(req).await {
        Ok(resp) => resp.status().as_u16(),
        Err(never) => match never {},
    }
}
