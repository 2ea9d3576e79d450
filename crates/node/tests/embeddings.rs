//! Embeddings through the gateway: one worker per request (so one model), the model named,
//! failures passed over, client errors not retried, workers without embeddings skipped; and
//! over the wire, a real worker node, an old worker that does not know the protocol, and one
//! that answers garbage.

mod common;

use std::{sync::Arc, time::Duration};

use futures_util::AsyncWriteExt as _;
use nova_api::{EmbedJob, InferError, Inference};
use nova_engine::{
    EmbedRequest, Engine, EngineError, EngineInfo, Health, Script, ScriptedEngine, TokenStream,
    ValidRequest,
};
use nova_node::{EngineSpec, GatewayConfig, GatewayNode, WorkerNode};
use nova_p2p::{frame, wire::Membership, P2p, P2pConfig, EMBED, MEMBERSHIP};
use nova_proto::{ErrorKind, Limits, TaskId};
use serde_json::json;
use tokio::time::Instant;

use crate::common::{engine, gateway, local};

const SECRET: &str = "embed-secret";

fn job(model: Option<&str>, inputs: &[&str]) -> EmbedJob {
    let inputs = inputs.iter().map(|s| s.to_string()).collect();
    EmbedJob {
        request: EmbedRequest::new(TaskId(1), inputs, &Limits::default()).expect("valid"),
        model: model.map(String::from),
        deadline: Duration::from_secs(20),
    }
}

/// What a scripted engine of any name answers for `inputs`.
async fn expected(inputs: &[&str]) -> Vec<Vec<f32>> {
    let e = ScriptedEngine::new("x", Script::Echo, Duration::ZERO);
    let req = job(None, inputs).request;
    nova_engine::embeddings(e.embed(req).expect("taken")).await.expect("vectors").vectors
}

#[tokio::test]
async fn one_request_is_embedded_by_one_model_which_the_answer_names() {
    let g = gateway().await;
    g.add_worker(local("slow", engine("m1", Script::Echo, 1), 10.0));
    g.add_worker(local("fast", engine("m2", Script::Echo, 1), 20.0));
    let texts = ["the cat sat", "a dog ran", "the cat sat"];
    let r = g.embed(job(None, &texts)).await.expect("vectors");
    assert_eq!((r.embeddings.model.as_str(), r.worker.as_str()), ("m2", "fast"));
    assert_eq!(r.embeddings.vectors, expected(&texts).await);
    assert_eq!(r.attempts.len(), 1);
    assert_eq!(r.attempts[0].outcome, "won");

    let r = g.embed(job(Some("m1"), &texts)).await.expect("vectors");
    assert_eq!((r.embeddings.model.as_str(), r.worker.as_str()), ("m1", "slow"));

    let e = g.embed(job(Some("m3"), &texts)).await.unwrap_err();
    assert_eq!(e, InferError::UnknownModel { model: "m3".into(), available: "m1, m2".into() });
    let metrics = g.metrics();
    assert!(metrics.contains("nova_requests_total{strategy=\"embeddings\",outcome=\"ok\"} 2"));
}

#[tokio::test]
async fn a_failing_worker_is_passed_over_but_a_client_error_ends_the_request() {
    let g = gateway().await;
    let broken = Script::Fail(EngineError::Decode("the device overheated".into()));
    g.add_worker(local("broken", engine("m", broken, 1), 50.0));
    g.add_worker(local("good", engine("m", Script::Echo, 1), 10.0));
    let r = g.embed(job(Some("m"), &["hello"])).await.expect("vectors");
    assert_eq!(r.worker, "good");
    let outcomes: Vec<(&str, &str)> =
        r.attempts.iter().map(|a| (a.worker.as_str(), a.outcome.as_str())).collect();
    assert_eq!(outcomes, [("broken", "decode"), ("good", "won")]);

    let g = gateway().await;
    let refuses = Script::Fail(EngineError::Rejected {
        kind: ErrorKind::PromptTooLong,
        message: "input[0] is 3000 tokens; m embeds at most 2048 per input".into(),
    });
    g.add_worker(local("strict", engine("m", refuses, 1), 50.0));
    g.add_worker(local("good", engine("m", Script::Echo, 1), 10.0));
    let e = g.embed(job(Some("m"), &["long"])).await.unwrap_err();
    assert_eq!(
        e,
        InferError::Rejected {
            code: "prompt_too_long",
            message: "input[0] is 3000 tokens; m embeds at most 2048 per input".into()
        },
        "every worker of the model would refuse it: not retried"
    );

    // Every worker failing: the last error, after the retry budget.
    let g = gateway().await;
    for id in ["a", "b", "c", "d"] {
        let broken = Script::Fail(EngineError::Decode(format!("{id} broke")));
        g.add_worker(local(id, engine("m", broken, 1), 10.0));
    }
    let e = g.embed(job(None, &["hello"])).await.unwrap_err();
    let InferError::Failed { message } = &e else { panic!("{e:?}") };
    assert!(message.starts_with("no worker could embed the inputs; the last said:"), "{message}");
}

/// An engine that generates but has no embeddings (the trait's default).
#[derive(Debug)]
struct NoEmbeddings(ScriptedEngine);

impl Engine for NoEmbeddings {
    fn info(&self) -> &EngineInfo {
        self.0.info()
    }
    fn submit(&self, req: ValidRequest) -> Result<TokenStream, EngineError> {
        self.0.submit(req)
    }
    fn health(&self) -> Health {
        self.0.health()
    }
}

#[tokio::test]
async fn workers_without_embeddings_are_skipped_and_named() {
    let g = gateway().await;
    let plain = NoEmbeddings(ScriptedEngine::new("m", Script::Echo, Duration::ZERO));
    g.add_worker(Arc::new(nova_node::LocalWorker::new("plain", "plain", Arc::new(plain), 50.0)));
    let e = g.embed(job(Some("m"), &["hello"])).await.unwrap_err();
    assert_eq!(
        e,
        InferError::Failed {
            message: "no worker serving m computes embeddings: the scripted backend does not \
                      compute embeddings"
                .into()
        }
    );
    g.add_worker(local("good", engine("m", Script::Echo, 1), 10.0));
    let r = g.embed(job(Some("m"), &["hello"])).await.expect("vectors");
    assert_eq!(r.worker, "good");
    assert_eq!(r.attempts[0].outcome, "unsupported");

    let empty = gateway().await;
    let e = empty.embed(job(None, &["hello"])).await.unwrap_err();
    assert!(matches!(e, InferError::NoCapacity { .. }), "{e:?}");
}

#[tokio::test]
async fn a_busy_worker_is_waited_for_within_the_queue_time() {
    let config =
        GatewayConfig { queue_wait: Duration::from_millis(300), ..GatewayConfig::default() };
    let g = nova_node::Gateway::new(config, None).await;
    let e = Arc::new(
        ScriptedEngine::new("m", Script::Echo, Duration::from_millis(1)).with_queue_capacity(1),
    );
    g.add_worker(local("one", e.clone(), 10.0));
    // Both places (a slot and the queue) taken by long generations: the embedding waits, then
    // is refused as busy.
    let long = ValidRequest::new(
        TaskId(2),
        nova_proto::Prompt::Text("w ".repeat(2000)),
        nova_proto::SamplingParams { max_tokens: 2000, ..Default::default() },
        &Limits::default(),
    )
    .expect("valid");
    let streams = [e.submit(long.clone()).expect("taken"), e.submit(long).expect("queued")];
    let t0 = Instant::now();
    let err = g.embed(job(None, &["hello"])).await.unwrap_err();
    assert_eq!(err, InferError::Overloaded { retry_after_s: 1 });
    assert!(t0.elapsed() >= Duration::from_millis(250), "{:?}", t0.elapsed());
    drop(streams);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(g.embed(job(None, &["hello"])).await.is_ok(), "free again");
}

fn scripted(model: &str) -> EngineSpec {
    EngineSpec::Ready(
        Arc::new(ScriptedEngine::new(model, Script::Echo, Duration::from_millis(1))),
        Some(10.0),
    )
}

async fn wait_models(gw: &GatewayNode, models: &[&str]) {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let served = gw.gateway().models();
        if models.iter().all(|m| served.iter().any(|s| s == m)) {
            return;
        }
        assert!(Instant::now() < until, "{models:?} never joined: {served:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How a fake worker answers embedding requests.
enum Fake {
    /// It does not know the protocol (a nova from before it).
    Old,
    /// It reads the request and answers these bytes.
    Garbage(Vec<u8>),
}

/// A peer that joins `gw` as a worker serving `model` with a hand-written hello, and answers
/// embedding requests as `fake` says. Kept alive by the returned node.
async fn fake_worker(gw: &GatewayNode, model: &str, fake: Fake) -> P2p {
    let p2p = P2p::spawn(P2pConfig {
        key: nova_p2p::Keypair::generate_ed25519(),
        secret: SECRET.into(),
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("addr")],
        idle_timeout: Duration::from_secs(60),
        mdns: false,
    })
    .expect("p2p");
    let mut control = p2p.control();
    if let Fake::Garbage(bytes) = fake {
        let mut incoming = control.accept(EMBED).expect("accept");
        tokio::spawn(async move {
            use futures_util::StreamExt as _;
            while let Some((_, mut stream)) = incoming.next().await {
                let _ = frame::read::<_, serde_json::Value>(&mut stream).await;
                let _ = stream.write_all(&bytes).await;
                let _ = stream.flush().await;
                // Keep the stream open: only the gateway's reading decides.
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    drop(stream);
                });
            }
        });
    }
    let peer = p2p.connect(gw.p2p_addrs()[0].clone()).await.expect("connects");
    let mut stream = control.open_stream(peer, MEMBERSHIP).await.expect("membership");
    let status = serde_json::from_value(json!({
        "name": format!("fake-{model}"),
        "models": [model],
        "tokens_per_s": 100.0,
        "queue_depth": 0,
        "queue_capacity": 4,
        "paused": false,
        "version": "0.0.1-old",
    }))
    .expect("a status");
    frame::write(&mut stream, &Membership::Hello(status)).await.expect("hello");
    tokio::spawn(async move {
        // Holds the membership stream open, as a joined worker does.
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(stream);
    });
    p2p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_cross_the_wire_and_old_or_broken_workers_fail_fast() {
    let mut config =
        common::gateway_node_config(SECRET, GatewayConfig::default(), scripted("gw-model"), None);
    config.max_members = 16;
    let gw = GatewayNode::spawn(config).await.expect("gateway starts");
    let worker =
        WorkerNode::spawn(common::worker_node_config(&gw, SECRET, "w", scripted("w-model"), None))
            .await
            .expect("worker starts");
    wait_models(&gw, &["gw-model", "w-model"]).await;
    let texts = ["over the wire", "twice", "over the wire"];
    let r = gw.gateway().embed(job(Some("w-model"), &texts)).await.expect("vectors");
    assert_eq!(r.embeddings.model, "w-model");
    assert_eq!(r.worker, worker.peer_id().to_string());
    assert_eq!(r.embeddings.vectors, expected(&texts).await, "exact across the wire");
    // The worker's own bounds: at the limit, still one request.
    let many: Vec<String> = (0..256).map(|i| format!("input {i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let r = gw.gateway().embed(job(Some("w-model"), &many)).await.expect("vectors");
    assert_eq!(r.embeddings.vectors.len(), 256);

    // A worker from before the protocol: refused at negotiation, said at once.
    let _old = fake_worker(&gw, "old-model", Fake::Old).await;
    wait_models(&gw, &["old-model"]).await;
    let t0 = Instant::now();
    let e = gw.gateway().embed(job(Some("old-model"), &["hello"])).await.unwrap_err();
    let InferError::Failed { message } = &e else { panic!("{e:?}") };
    assert!(
        message.starts_with("no worker serving old-model computes embeddings: worker "),
        "{message}"
    );
    assert!(message.contains("older than the /nova/embed/1 protocol"), "{message}");
    assert!(t0.elapsed() < Duration::from_secs(5), "no hang: {:?}", t0.elapsed());

    // Garbage is an error, never a panic or a hang: a length past the frame bound, malformed
    // JSON, a vector that is not base64, too many vectors, a model it does not serve.
    let frame_of = |v: serde_json::Value| {
        let b = v.to_string().into_bytes();
        let mut out = (b.len() as u32).to_be_bytes().to_vec();
        out.extend(b);
        out
    };
    let vector = json!({"frame": "vector", "f32le": nova_proto::embed::encode_f32le(&[1.0, 0.0])});
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("g1", u32::MAX.to_be_bytes().to_vec(), "exceeds"),
        ("g2", [&7u32.to_be_bytes()[..], b"{{{{{{{"].concat(), "malformed frame"),
        ("g3", frame_of(json!({"frame": "vector", "f32le": "!!"})), "not base64"),
        (
            "g4",
            [frame_of(vector.clone()), frame_of(vector.clone())].concat(),
            "more than 1 vectors",
        ),
        (
            "g5",
            [
                frame_of(vector),
                frame_of(json!({"frame": "done", "model": "other", "prompt_tokens": 1})),
            ]
            .concat(),
            "which it does not serve",
        ),
        (
            "g6",
            frame_of(json!({"frame": "done", "model": "g6", "prompt_tokens": 1})),
            "0 vectors for 1 inputs",
        ),
    ];
    let mut fakes = Vec::new();
    for (model, bytes, _) in &cases {
        fakes.push(fake_worker(&gw, model, Fake::Garbage(bytes.clone())).await);
    }
    let models: Vec<&str> = cases.iter().map(|c| c.0).collect();
    wait_models(&gw, &models).await;
    for (model, _, why) in cases {
        let t0 = Instant::now();
        let e = gw.gateway().embed(job(Some(model), &["hello"])).await.unwrap_err();
        let InferError::Failed { message } = &e else { panic!("{model}: {e:?}") };
        assert!(message.contains(why), "{model}: {message}");
        assert!(t0.elapsed() < Duration::from_secs(5), "{model}: {:?}", t0.elapsed());
    }
    drop(fakes);
    worker.shutdown().await;
    gw.shutdown().await;
}
