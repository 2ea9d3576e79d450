//! The composition root in process: a [`GatewayNode`] and [`WorkerNode`]s on 127.0.0.1 with
//! scripted engines, joining, leaving, being forgotten, and shutting down in order; and the
//! worker list's bounds. The real binary runs the same paths in the CLI's `it` tests.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use nova_engine::{EngineError, Script, ScriptedEngine, TokenStream};
use nova_node::{
    Departure, EngineSpec, Gateway, GatewayConfig, GatewayNode, SwarmFull, Worker, WorkerNode,
};
mod common;

use nova_proto::{SwarmView, ValidRequest, WorkerState};
use nova_router::WorkerView;

use common::TOKEN;
const SECRET: &str = "lifecycle-secret";

/// A worker whose departure the test sets.
#[derive(Debug)]
struct Member {
    id: String,
    left: Mutex<Option<Departure>>,
}

impl Member {
    fn new(id: &str) -> Arc<Self> {
        Arc::new(Self { id: id.into(), left: Mutex::new(None) })
    }

    fn leave(&self, at: u64) {
        *self.left.lock().expect("lock") = Some(Departure { left_at_ms: at, last_seen_ms: at - 5 });
    }
}

impl Worker for Member {
    fn id(&self) -> &str {
        &self.id
    }
    fn view(&self, now_ms: u64) -> WorkerView {
        let gone = self.left.lock().expect("lock").is_some();
        WorkerView {
            id: self.id.clone(),
            name: self.id.clone(),
            models: vec!["m".into()],
            tokens_per_s: 1.0,
            queue_depth: 0,
            queue_capacity: 1,
            paused: false,
            last_seen_ms: if gone { 0 } else { now_ms },
            slots: 1,
            stream_speeds: Vec::new(),
        }
    }
    fn submit(&self, _: ValidRequest) -> Result<TokenStream, EngineError> {
        Err(EngineError::Shutdown)
    }
    fn departure(&self) -> Option<Departure> {
        *self.left.lock().expect("lock")
    }
}

#[tokio::test]
async fn only_connected_workers_count_against_the_limit_and_departed_ones_are_forgotten() {
    let config = GatewayConfig { forget_after: Duration::from_secs(1), ..GatewayConfig::default() };
    let g = Gateway::new(config, None).await;
    let (a, b, c) = (Member::new("a"), Member::new("b"), Member::new("c"));
    g.add_worker_bounded(a.clone(), 2).expect("a fits");
    g.add_worker_bounded(b.clone(), 2).expect("b fits");
    assert_eq!(g.add_worker_bounded(c.clone(), 2), Err(SwarmFull { max: 2 }));
    // A rejoin under the same id replaces the old entry, even at the limit.
    g.add_worker_bounded(Member::new("b"), 2).expect("b rejoins");

    a.leave(10_000);
    g.add_worker_bounded(c.clone(), 2).expect("a left, so c fits");
    let view = nova_api::Inference::swarm(&g);
    let gone =
        view.workers.iter().find(|w| w.worker.id == "a").expect("a is listed until forgotten");
    assert_eq!(gone.state, WorkerState::Gone);
    assert_eq!(gone.left_at_ms, Some(10_000));
    assert_eq!(gone.worker.last_seen_ms, 9_995, "when it was last heard from is kept");
    assert_eq!(view.forget_after_ms, Some(1000));

    assert_eq!(g.forget_departed(10_999), 0, "not yet");
    assert_eq!(g.forget_departed(11_000), 1);
    let ids: Vec<String> =
        nova_api::Inference::swarm(&g).workers.into_iter().map(|w| w.worker.id).collect();
    assert_eq!(ids, ["b", "c"]);
}

fn scripted(model: &str) -> EngineSpec {
    let engine = ScriptedEngine::new(model, Script::Fixed("hi".into()), Duration::from_millis(1));
    EngineSpec::Ready(Arc::new(engine), Some(10.0))
}

async fn gateway_node(forget_after: Duration) -> GatewayNode {
    let gateway = GatewayConfig { forget_after, ..GatewayConfig::default() };
    let config = common::gateway_node_config(SECRET, gateway, scripted("m"), None);
    GatewayNode::spawn(config).await.expect("gateway starts")
}

async fn worker_node(gw: &GatewayNode, name: &str) -> WorkerNode {
    WorkerNode::spawn(common::worker_node_config(gw, SECRET, name, scripted("m"), None))
        .await
        .expect("worker starts")
}

async fn swarm(gw: &GatewayNode) -> SwarmView {
    reqwest::Client::new()
        .get(format!("http://{}/v1/swarm", gw.http_addr()))
        .bearer_auth(TOKEN)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("GET /v1/swarm")
        .json()
        .await
        .expect("a typed swarm view")
}

/// Polls the gateway's view until `pred` holds (at most 20 s).
async fn wait_view(gw: &GatewayNode, what: &str, pred: impl Fn(&SwarmView) -> bool) -> SwarmView {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = swarm(gw).await;
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "never {what}: {v:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn state_of(v: &SwarmView, name: &str) -> Option<WorkerState> {
    v.workers.iter().find(|w| w.worker.name == name).map(|w| w.state)
}

#[tokio::test]
async fn a_worker_joins_leaves_on_shutdown_and_is_forgotten() {
    let gw = gateway_node(Duration::from_millis(500)).await;
    let v = swarm(&gw).await;
    assert_eq!(state_of(&v, "gw"), Some(WorkerState::Ready), "the local worker: {v:?}");

    let w = worker_node(&gw, "w1").await;
    wait_view(&gw, "w1 ready", |v| state_of(v, "w1") == Some(WorkerState::Ready)).await;
    w.shutdown().await;
    let v = wait_view(&gw, "w1 gone", |v| state_of(v, "w1") == Some(WorkerState::Gone)).await;
    let gone = v.workers.iter().find(|x| x.worker.name == "w1").expect("w1");
    assert!(gone.left_at_ms.is_some() && gone.worker.last_seen_ms > 0, "{gone:?}");
    wait_view(&gw, "w1 forgotten", |v| state_of(v, "w1").is_none()).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn shutdown_is_bounded_with_a_live_feed_open() {
    let gw = gateway_node(Duration::from_secs(600)).await;
    // The dashboard's feed never ends by itself; shutdown must not wait for it forever.
    let mut feed = reqwest::Client::new()
        .get(format!("http://{}/v1/swarm/events", gw.http_addr()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("feed");
    let first = feed.chunk().await.expect("read").expect("a first event");
    assert!(String::from_utf8_lossy(&first).contains("event: swarm"));
    tokio::time::timeout(Duration::from_secs(30), gw.shutdown())
        .await
        .expect("shutdown finishes while a feed is open");
}
