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

/// p2p settings on 127.0.0.1 (a free port, no discovery) with a fresh key.
pub(crate) fn loopback_p2p(secret: &str) -> nova_node::P2pSettings {
    nova_node::P2pSettings {
        key: nova_p2p::Keypair::generate_ed25519(),
        secret: secret.into(),
        listen: "/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr"),
        mdns: false,
    }
}

/// A gateway node on 127.0.0.1 with a local worker `gw` on `engine`; `gateway` and
/// `knowledge` as given, everything else default.
pub(crate) fn gateway_node_config(
    secret: &str,
    gateway: GatewayConfig,
    engine: nova_node::EngineSpec,
    knowledge: Option<(String, Arc<dyn nova_node::KnowledgeBase>)>,
) -> nova_node::GatewayNodeConfig {
    nova_node::GatewayNodeConfig {
        http: nova_node::HttpConfig::new("127.0.0.1:0".parse().expect("addr")),
        token: TOKEN.into(),
        limits: Limits::default(),
        gateway,
        store: None,
        p2p: loopback_p2p(secret),
        bundle_dir: None,
        local: Some(nova_node::LocalWorkerSpec {
            id: "local-gw".into(),
            name: "gw".into(),
            engine,
        }),
        max_members: 8,
        knowledge,
        pool: None,
    }
}

/// A worker node on 127.0.0.1 joining `gw` as `name`, heartbeating every 100 ms.
pub(crate) fn worker_node_config(
    gw: &nova_node::GatewayNode,
    secret: &str,
    name: &str,
    engine: nova_node::EngineSpec,
    knowledge: Option<Arc<dyn nova_node::KnowledgeBase>>,
) -> nova_node::WorkerNodeConfig {
    nova_node::WorkerNodeConfig {
        p2p: loopback_p2p(secret),
        target: nova_node::JoinTarget::Addr(gw.p2p_addrs()[0].clone()),
        name: name.into(),
        version: "0.0.0-test".into(),
        heartbeat: Duration::from_millis(100),
        engine,
        guard: None,
        updates: None,
        knowledge,
        shards: None,
    }
}
