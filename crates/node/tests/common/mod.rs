//! Helpers shared by the gateway's scripted tests: engines, workers, the HTTP router.
#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

use axum::{body::Body, http::Request};
use http_body_util::BodyExt as _;
use nova_api::AppState;
use nova_engine::{Script, ScriptedEngine};
use nova_node::{Gateway, GatewayConfig, LocalWorker};
use nova_proto::Limits;
use serde_json::{json, Value};
use tower::ServiceExt as _;

pub(crate) const TOKEN: &str = "test-token";

pub(crate) fn engine(model: &str, script: Script, ms: u64) -> Arc<ScriptedEngine> {
    Arc::new(ScriptedEngine::new(model, script, Duration::from_millis(ms)))
}

pub(crate) fn local(id: &str, e: Arc<ScriptedEngine>, tps: f64) -> Arc<LocalWorker> {
    Arc::new(LocalWorker::new(id, id, e, tps))
}

pub(crate) async fn gateway() -> Gateway {
    Gateway::new(GatewayConfig::default(), None).await
}

pub(crate) fn app(g: &Gateway) -> axum::Router {
    nova_api::router(AppState::new(Arc::new(g.clone()), TOKEN, Limits::default()))
}

pub(crate) async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, String) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status().as_u16();
    let retry_after =
        resp.headers().get("retry-after").map(|v| v.to_str().unwrap_or("").to_string());
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let mut v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if let Some(r) = retry_after {
        v["retry_after_header"] = json!(r);
    }
    (status, v, text)
}

pub(crate) async fn submit(app: &axum::Router, body: Value) -> (u16, Value) {
    let (s, v, _) = call(app, "POST", "/submit", Some(TOKEN), Some(body)).await;
    (s, v)
}
