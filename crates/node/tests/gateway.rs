//! The gateway behind the real HTTP router, with scripted engines: strategy, routing and fault
//! logic, deterministic and fast. The real model runs in the CLI's end-to-end tests.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{body::Body, http::Request};
use http_body_util::BodyExt as _;
use nova_engine::{Engine, EngineError, Script, ScriptedEngine, TokenStream};
use nova_node::{Gateway, GatewayConfig, LocalWorker, Worker};
use nova_proto::ValidRequest;
use nova_router::WorkerView;
use serde_json::{json, Value};
use tower::ServiceExt as _;

mod common;
use common::{app, call, engine, gateway, local, submit, TOKEN};

/// A worker whose reported state the test controls, counting what it is given.
#[derive(Debug)]
struct Controlled {
    inner: LocalWorker,
    paused: bool,
    stale: bool,
    submits: AtomicUsize,
}

impl Worker for Controlled {
    fn id(&self) -> &str {
        self.inner.id()
    }
    fn view(&self, now_ms: u64) -> WorkerView {
        let mut v = self.inner.view(now_ms);
        v.paused = self.paused;
        if self.stale {
            v.last_seen_ms = now_ms.saturating_sub(60_000);
        }
        v
    }
    fn submit(&self, req: ValidRequest) -> Result<TokenStream, EngineError> {
        self.submits.fetch_add(1, Ordering::SeqCst);
        self.inner.submit(req)
    }
}

#[tokio::test]
async fn race_returns_the_first_complete_answer_and_cancels_the_rest() {
    let g = gateway().await;
    let slow =
        engine("m", Script::Fixed("slow answer that takes a long time to finish".into()), 40);
    g.add_worker(local("fast", engine("m", Script::Fixed("quick answer".into()), 1), 50.0));
    g.add_worker(local("slow", slow.clone(), 40.0));
    let (status, v) = submit(&app(&g), json!({"prompt": "hi", "fanout": 2})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["text"], "quick answer");
    assert_eq!(v["trace"]["winner"], "fast");
    let outcomes: Vec<(&str, &str)> = v["trace"]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["worker"].as_str().unwrap(), a["outcome"].as_str().unwrap()))
        .collect();
    assert!(
        outcomes.contains(&("fast", "won")) && outcomes.contains(&("slow", "cancelled")),
        "{outcomes:?}"
    );
    // The loser's generation stops promptly.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(slow.health().in_flight, 0, "the slow worker kept generating");
}

#[tokio::test]
async fn best_of_n_returns_the_rerankers_pick_with_every_candidate() {
    let g = gateway().await;
    g.add_worker(local(
        "a",
        engine("m", Script::Fixed("Paris is the capital of France.".into()), 1),
        10.0,
    ));
    g.add_worker(local(
        "b",
        engine("m", Script::Fixed("Bananas grow in bunches.".into()), 1),
        10.0,
    ));
    g.add_worker(local(
        "c",
        engine("m", Script::Fixed("The capital of France is Paris.".into()), 1),
        10.0,
    ));
    let (status, v) = submit(
        &app(&g),
        json!({"prompt": "What is the capital of France?", "strategy": "best_of_n", "fanout": 3, "debug": true}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(v["text"].as_str().unwrap().contains("Paris"), "{v}");
    let attempts = v["trace"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    assert!(
        attempts.iter().all(|a| a["score"].is_number() && a["text"].is_string()),
        "{attempts:?}"
    );
    let banana = attempts.iter().find(|a| a["worker"] == "b").unwrap();
    assert_eq!(banana["outcome"], "lost");
}

#[tokio::test]
async fn tag_routing_follows_decayed_wins_and_still_explores() {
    let g = gateway().await;
    g.add_worker(local(
        "good",
        engine("m", Script::Fixed("The capital of France is Paris.".into()), 1),
        10.0,
    ));
    g.add_worker(local("bad", engine("m", Script::Fixed("zzz".into()), 1), 100.0));
    let app = app(&g);
    for _ in 0..6 {
        let (s, _) = submit(&app, json!({"prompt": "capital of France?", "strategy": "best_of_n", "fanout": 2, "tags": ["geo"]})).await;
        assert_eq!(s, 200);
    }
    assert!(g.win_rate("good", "geo") > 0.8 && g.win_rate("bad", "geo") < 0.2);
    // With fanout 1 the faster worker would win on speed alone; the tag sends it to "good".
    let (_, v) = submit(&app, json!({"prompt": "capital?", "fanout": 1, "tags": ["geo"]})).await;
    assert_eq!(v["trace"]["winner"], "good");
    // Without the tag, speed decides.
    let (_, v) = submit(&app, json!({"prompt": "capital?", "fanout": 1})).await;
    assert_eq!(v["trace"]["winner"], "bad");
    // A newcomer has no history and is explored ahead of the proven loser.
    g.add_worker(local("new", engine("m", Script::Fixed("Paris".into()), 1), 1.0));
    let (_, v) = submit(
        &app,
        json!({"prompt": "capital?", "fanout": 2, "tags": ["geo"], "strategy": "best_of_n"}),
    )
    .await;
    let asked: Vec<&str> = v["trace"]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["worker"].as_str().unwrap())
        .collect();
    assert!(asked.contains(&"new") && !asked.contains(&"bad"), "{asked:?}");
}

#[tokio::test]
async fn stale_and_paused_workers_never_get_work() {
    let g = gateway().await;
    let mk = |id: &str, paused, stale| {
        Arc::new(Controlled {
            inner: LocalWorker::new(id, id, engine("m", Script::Echo, 1), 1000.0),
            paused,
            stale,
            submits: AtomicUsize::new(0),
        })
    };
    let (paused, stale, ok) =
        (mk("paused", true, false), mk("stale", false, true), mk("ok", false, false));
    for w in [&paused, &stale, &ok] {
        g.add_worker(w.clone());
    }
    let app = app(&g);
    for strategy in ["race", "best_of_n"] {
        for _ in 0..5 {
            let (s, v) =
                submit(&app, json!({"prompt": "hi", "fanout": 3, "strategy": strategy})).await;
            assert_eq!(s, 200, "{v}");
        }
    }
    assert_eq!(paused.submits.load(Ordering::SeqCst), 0);
    assert_eq!(stale.submits.load(Ordering::SeqCst), 0);
    // Race asks it once; best-of-3 takes all 3 samples from it, each as its sequence frees.
    assert_eq!(ok.submits.load(Ordering::SeqCst), 5 + 5 * 3);
    // With only ineligible workers left: a clear 503, not a hang.
    g.remove_worker("ok");
    let (s, v) = submit(&app, json!({"prompt": "hi"})).await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error"]["code"], "no_capacity");
    assert!(v["error"]["message"].as_str().unwrap().contains("1 stale, 1 paused"), "{v}");
}

#[tokio::test]
async fn a_failing_worker_is_retried_elsewhere() {
    let g = gateway().await;
    g.add_worker(local(
        "broken",
        engine("m", Script::Fail(EngineError::Decode("boom".into())), 1),
        1000.0,
    ));
    g.add_worker(local("fine", engine("m", Script::Fixed("ok".into()), 1), 1.0));
    let app = app(&g);
    for strategy in ["race", "best_of_n"] {
        let (s, v) = submit(&app, json!({"prompt": "hi", "fanout": 1, "strategy": strategy})).await;
        assert_eq!(s, 200, "{strategy}: {v}");
        assert_eq!(v["trace"]["winner"], "fine");
        assert_eq!(v["trace"]["attempts"][0]["outcome"], "decode");
    }
    g.remove_worker("fine");
    let (s, v) = submit(&app, json!({"prompt": "hi", "fanout": 1})).await;
    assert_eq!(s, 502, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("boom"), "{v}");
}

#[tokio::test]
async fn openai_chat_completions_whole_and_streamed() {
    let g = gateway().await;
    g.add_worker(local("w", engine("smollm2-135m", Script::Echo, 1), 10.0));
    let app = app(&g);
    let body = json!({"model": "smollm2-135m", "messages": [{"role": "user", "content": "hello there friend"}]});
    let (s, v, _) =
        call(&app, "POST", "/v1/chat/completions", Some(TOKEN), Some(body.clone())).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "hello there friend");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let mut streamed = body;
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (s, _, text) =
        call(&app, "POST", "/v1/chat/completions", Some(TOKEN), Some(streamed)).await;
    assert_eq!(s, 200);
    let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{text}");
    let content: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect();
    assert_eq!(content, "hello there friend");
    assert!(events.len() >= 6, "role chunk, 3 content chunks, final, usage, done: {events:?}");

    let (s, v, _) = call(&app, "GET", "/v1/models", Some(TOKEN), None).await;
    assert_eq!(s, 200);
    let ids: Vec<&str> =
        v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["nova", "smollm2-135m"]);
}

#[tokio::test]
async fn requests_for_a_model_reach_only_its_nodes() {
    let g = gateway().await;
    g.add_worker(local("smol", engine("smollm2-135m", Script::Fixed("from smol".into()), 1), 10.0));
    g.add_worker(local("gem", engine("gemma3-270m", Script::Fixed("from gemma".into()), 1), 10.0));
    let app = app(&g);
    for _ in 0..3 {
        let (_, v) =
            submit(&app, json!({"prompt": "hi", "model": "gemma3-270m", "fanout": 2})).await;
        assert_eq!(v["trace"]["winner"], "gem", "{v}");
        let (_, v) =
            submit(&app, json!({"prompt": "hi", "model": "smollm2-135m", "fanout": 2})).await;
        assert_eq!(v["trace"]["winner"], "smol", "{v}");
    }
    let (s, v) = submit(&app, json!({"prompt": "hi", "model": "gpt-4"})).await;
    assert_eq!(s, 404);
    assert_eq!(v["error"]["code"], "model_not_found");
    assert!(v["error"]["message"].as_str().unwrap().contains("gemma3-270m, smollm2-135m"), "{v}");
}

#[tokio::test]
async fn bad_requests_get_precise_openai_shaped_errors() {
    let g = gateway().await;
    g.add_worker(local("w", engine("m", Script::Echo, 1), 10.0));
    let app = app(&g);
    let chat = json!({"messages": [{"role": "user", "content": "hi"}]});
    let (s, v, _) = call(&app, "POST", "/v1/chat/completions", None, Some(chat.clone())).await;
    assert_eq!((s, v["error"]["code"].as_str()), (401, Some("invalid_api_key")));
    let (s, _, _) = call(&app, "POST", "/v1/chat/completions", Some("wrong"), Some(chat)).await;
    assert_eq!(s, 401);
    let (s, _, _) = call(&app, "GET", "/healthz", None, None).await;
    assert_eq!(s, 200, "health needs no token");

    let req = Request::builder()
        .method("POST")
        .uri("/submit")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let v: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");

    let (s, v) = submit(&app, json!({"prompt": "x".repeat(70_000)})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (422, Some("prompt_too_long")));
    let (s, v) = submit(&app, json!({"prompt": "hi", "params": {"temperature": 5.0}})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (422, Some("out_of_range")));
    let (s, _) = submit(&app, json!({"prompt": "hi", "surprise": 1})).await;
    assert_eq!(s, 400);
    let (s, _, _) =
        call(&app, "POST", "/submit", Some(TOKEN), Some(json!({"prompt": "x".repeat(2 << 20)})))
            .await;
    assert_eq!(s, 413, "bodies over 1 MiB are refused before parsing");
    let (s, _, _) = call(&app, "GET", "/nope", Some(TOKEN), None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn admission_is_bounded_with_retry_after() {
    let config = GatewayConfig {
        max_in_flight: 1,
        queue_wait: Duration::from_millis(100),
        ..GatewayConfig::default()
    };
    let g = Gateway::new(config, None).await;
    g.add_worker(local("w", engine("m", Script::Fixed("a b c d e f g h".into()), 30), 10.0));
    let app = app(&g);
    let first = tokio::spawn({
        let app = app.clone();
        async move { submit(&app, json!({"prompt": "hi"})).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // It waits in the queue for its turn, then gives up before the first job ends.
    let (s, v) = submit(&app, json!({"prompt": "hi"})).await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["retry_after_header"], "1");
    assert_eq!(first.await.unwrap().0, 200);
    let (_, _, metrics) = call(&app, "GET", "/metrics", Some(TOKEN), None).await;
    assert!(
        metrics.contains("nova_requests_total{strategy=\"race\",outcome=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("nova_requests_total{strategy=\"race\",outcome=\"overloaded\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("nova_workers{state=\"ready\"} 1"), "{metrics}");
    assert!(metrics.contains("nova_prompt_tokens_total "), "{metrics}");
    assert!(metrics.contains(",state=\"ready\"} 1"), "nova_worker_info: {metrics}");
    assert!(metrics.contains("nova_worker_tokens_total{worker="), "{metrics}");
    assert!(metrics.contains("nova_attempts_total{worker="), "{metrics}");
    assert!(
        metrics.contains("nova_time_to_first_token_seconds_count{strategy=\"race\"} 1"),
        "{metrics}"
    );
}

/// The `data:` events of an SSE body, parsed.
fn sse_events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

fn content(events: &[Value]) -> String {
    events.iter().filter_map(|v| v["choices"][0]["delta"]["content"].as_str()).collect()
}

fn stream_body(fanout: usize) -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}], "stream": true, "nova": {"fanout": fanout}})
}

#[tokio::test]
async fn a_busy_swarm_queues_streams_instead_of_failing_them() {
    // One small device: one request at a time, one more waiting. Eight streams at once: on the
    // old gateway most got 503, or 200 and then "queue is full" inside the stream.
    let g = gateway().await;
    let e = ScriptedEngine::new("m", Script::Fixed("a b c d".into()), Duration::from_millis(5))
        .with_parallelism(1)
        .with_queue_capacity(1);
    g.add_worker(local("small", Arc::new(e), 10.0));
    let app = app(&g);
    for (s, text) in streams_at_once(&app, 8).await {
        assert_eq!(s, 200, "{text}");
        assert_eq!(content(&sse_events(&text)), "a b c d", "{text}");
        assert!(!text.contains("\"error\""), "no error after a 200: {text}");
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    }
}

#[tokio::test]
async fn over_capacity_is_429_before_any_200() {
    let config = GatewayConfig {
        max_queued: 2,
        queue_wait: Duration::from_millis(30),
        ..GatewayConfig::default()
    };
    let g = Gateway::new(config, None).await;
    let e =
        ScriptedEngine::new("m", Script::Fixed("a b c d e f".into()), Duration::from_millis(20))
            .with_parallelism(1)
            .with_queue_capacity(1);
    g.add_worker(local("small", Arc::new(e), 10.0));
    let app = app(&g);
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                call(&app, "POST", "/v1/chat/completions", Some(TOKEN), Some(stream_body(1))).await
            })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for c in calls {
        let (s, v, text) = c.await.unwrap();
        match s {
            200 => {
                ok += 1;
                assert!(!text.contains("\"error\""), "an error after a 200: {text}");
            }
            429 => {
                refused += 1;
                assert_eq!(v["error"]["code"], "overloaded", "{v}");
                assert!(v["retry_after_header"].is_string(), "429 carries Retry-After: {v}");
            }
            other => panic!("unexpected status {other}: {text}"),
        }
    }
    assert!(ok >= 1 && refused >= 1, "ok {ok}, refused {refused}");
}

#[tokio::test]
async fn no_capacity_carries_retry_after() {
    let g = gateway().await;
    let app = app(&g);
    let (s, v) = submit(&app, json!({"prompt": "hi"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (503, Some("no_capacity")), "{v}");
    assert!(v["retry_after_header"].is_string(), "{v}");
}

#[tokio::test]
async fn client_errors_are_4xx_and_never_retried() {
    let g = gateway().await;
    let too_long = || Script::Fail(EngineError::PromptTooLong { tokens: 9000, n_ctx: 2048 });
    let mk = |id: &str| {
        Arc::new(Controlled {
            inner: LocalWorker::new(id, id, engine("m", too_long(), 1), 10.0),
            paused: false,
            stale: false,
            submits: AtomicUsize::new(0),
        })
    };
    let (a, b, c) = (mk("a"), mk("b"), mk("c"));
    for w in [&a, &b, &c] {
        g.add_worker(w.clone());
    }
    let app = app(&g);
    let submits = || [&a, &b, &c].iter().map(|w| w.submits.load(Ordering::SeqCst)).sum::<usize>();
    for strategy in ["race", "best_of_n"] {
        let before = submits();
        let (s, v) =
            submit(&app, json!({"prompt": "long", "strategy": strategy, "fanout": 1})).await;
        assert_eq!((s, v["error"]["code"].as_str()), (400, Some("prompt_too_long")), "{v}");
        assert_eq!(submits() - before, 1, "{strategy}: a client error is not retried");
    }
    let before = submits();
    let (s, v, _) =
        call(&app, "POST", "/v1/chat/completions", Some(TOKEN), Some(stream_body(1))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("prompt_too_long")), "streams too");
    assert_eq!(submits() - before, 1);

    // NUL characters and hostile tags are refused before any worker sees them.
    let before = submits();
    let (s, v) = submit(&app, json!({"prompt": "a\u{0}b"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (422, Some("nul_character")), "{v}");
    let tags: Vec<String> = (0..100_000).map(|i| format!("t{i}")).collect();
    let (s, v) = submit(&app, json!({"prompt": "hi", "tags": tags})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (422, Some("bad_tags")), "{v}");
    let chat = json!({"messages": [{"role": "user", "content": "hi"}], "nova": {"tags": tags}});
    let (s, v, _) = call(&app, "POST", "/v1/chat/completions", Some(TOKEN), Some(chat)).await;
    assert_eq!((s, v["error"]["code"].as_str()), (422, Some("bad_tags")), "{v}");
    assert_eq!(submits(), before);
}

#[tokio::test]
async fn a_stream_is_handed_over_when_its_worker_dies() {
    let g = gateway().await;
    let text = "one two three four five six";
    let dying = Script::FailAfter {
        text: text.into(),
        after: 2,
        error: EngineError::Unavailable("worker went away".into()),
    };
    // The dying worker is the faster one, so it wins the race of one.
    g.add_worker(local("dying", engine("m", dying, 1), 10.0));
    g.add_worker(local("steady", engine("m", Script::Fixed(text.into()), 1), 1.0));
    let app = app(&g);
    let (s, _, body) =
        call(&app, "POST", "/v1/chat/completions", Some(TOKEN), Some(stream_body(1))).await;
    assert_eq!(s, 200);
    let events = sse_events(&body);
    assert_eq!(content(&events), text, "one uninterrupted answer: {body}");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    let trace = events.iter().find(|e| e["nova"].is_object()).expect("trace")["nova"].clone();
    assert_eq!(trace["winner"], "steady", "{trace}");
    let h = &trace["handovers"][0];
    assert_eq!((h["from"].as_str(), h["to"].as_str()), (Some("dying"), Some("steady")), "{trace}");
    assert_eq!(h["after_tokens"], 2, "{trace}");
    assert_eq!(h["reason"], "unavailable", "{trace}");
}

#[tokio::test]
async fn a_stream_whose_worker_dies_with_nobody_to_continue_ends_with_an_error_event() {
    let g = gateway().await;
    let dying = Script::FailAfter {
        text: "one two three four five".into(),
        after: 2,
        error: EngineError::Unavailable("worker went away".into()),
    };
    g.add_worker(local("dying", engine("m", dying, 1), 10.0));
    let app = app(&g);
    let (s, _, text) =
        call(&app, "POST", "/v1/chat/completions", Some(TOKEN), Some(stream_body(1))).await;
    assert_eq!(s, 200);
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    let content: String =
        events.iter().filter_map(|v| v["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content, "one two ", "the tokens that did arrive are delivered");
    let last = events.last().expect("events");
    assert_eq!(last["error"]["code"], "worker_failed", "{text}");
    assert!(
        last["error"]["message"].as_str().unwrap().contains("after streaming 2 tokens"),
        "{last}"
    );
    assert!(!text.contains("[DONE]"), "a failed stream must not look complete: {text}");

    // Before any token, a failure moves the request to another worker instead.
    g.add_worker(local("fine", engine("m", Script::Fixed("all good".into()), 1), 1.0));
    let never = Script::Fail(EngineError::Unavailable("down".into()));
    g.add_worker(local("dying", engine("m", never, 1), 10.0));
    let body = json!({"messages": [{"role": "user", "content": "hi"}], "stream": true, "nova": {"fanout": 1}});
    let (_, _, text) = call(&app, "POST", "/v1/chat/completions", Some(TOKEN), Some(body)).await;
    let content: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(String::from))
        .collect();
    assert_eq!(content, "all good", "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
}

#[tokio::test]
async fn tag_win_rates_survive_a_gateway_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("nova.db");
    {
        let store = nova_store::Store::open(&db).expect("store");
        let g = Gateway::new(GatewayConfig::default(), Some(store.clone())).await;
        g.add_worker(local(
            "good",
            engine("m", Script::Fixed("The capital of France is Paris.".into()), 1),
            10.0,
        ));
        g.add_worker(local("bad", engine("m", Script::Fixed("zzz".into()), 1), 10.0));
        let app = app(&g);
        for _ in 0..4 {
            let (s, _) = submit(&app, json!({"prompt": "capital of France?", "strategy": "best_of_n", "fanout": 2, "tags": ["geo"]})).await;
            assert_eq!(s, 200);
        }
        store.flush().await.expect("flush");
        let logged = store.recent_requests(10).await.expect("log");
        assert_eq!(logged.len(), 4);
        assert!(logged.iter().all(|r| r.outcome == "ok" && r.strategy == "best_of_n"));
    }
    let store = nova_store::Store::open(&db).expect("reopen");
    let g = Gateway::new(GatewayConfig::default(), Some(store)).await;
    assert!(g.win_rate("good", "geo") > 0.75, "{}", g.win_rate("good", "geo"));
    assert!(g.win_rate("bad", "geo") < 0.25, "{}", g.win_rate("bad", "geo"));
}

#[tokio::test]
async fn a_worker_with_four_slots_takes_four_streams_at_once() {
    // A batching engine generates 4 requests at once: the worker must say so, and the gateway
    // must send it all 4 rather than queue 3 of them behind the first.
    let g = gateway().await;
    let e = ScriptedEngine::new("m", Script::Fixed("a b c d".into()), Duration::from_millis(60))
        .with_parallelism(4)
        .with_queue_capacity(1);
    let worker = local("batching", Arc::new(e), 10.0);
    assert_eq!(worker.view(0).queue_capacity, 5, "4 slots and a queue of 1");
    g.add_worker(worker);
    let app = app(&g);
    let started = std::time::Instant::now();
    for (s, text) in streams_at_once(&app, 4).await {
        assert_eq!(s, 200, "{text}");
        assert_eq!(content(&sse_events(&text)), "a b c d", "{text}");
    }
    // One answer takes 4 × 60 ms; one after another they would take about a second.
    let took = started.elapsed();
    assert!(took < Duration::from_millis(700), "the streams waited for each other: {took:?}");
}

#[tokio::test]
async fn best_of_n_fills_one_workers_free_sequences() {
    // A swarm of one device that generates 4 requests at once: best-of-4 gets its 4 samples
    // from it at once, not one answer (it is the only worker) nor 4 queued one after another.
    let g = gateway().await;
    let e = ScriptedEngine::new("m", Script::Fixed("a b c d".into()), Duration::from_millis(50))
        .with_parallelism(4)
        .with_queue_capacity(1);
    g.add_worker(local("batching", Arc::new(e), 10.0));
    let (s, v) =
        submit(&app(&g), json!({"prompt": "hi", "strategy": "best_of_n", "fanout": 4})).await;
    assert_eq!(s, 200, "{v}");
    let attempts = v["trace"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 4, "{v}");
    assert!(attempts.iter().all(|a| a["worker"] == "batching"), "{v}");
    // All four started at once: each answer took about one answer's time (4 × 50 ms), none
    // waited behind another (which would put the last one past 800 ms).
    let slowest = attempts.iter().filter_map(|a| a["latency_ms"].as_f64()).fold(0.0, f64::max);
    assert!(slowest < 600.0, "samples waited for each other: {v}");
}

/// `n` streamed chat completions sent at once: each one's status and body, in order.
async fn streams_at_once(app: &axum::Router, n: usize) -> Vec<(u16, String)> {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                call(&app, "POST", "/v1/chat/completions", Some(TOKEN), Some(stream_body(1))).await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for c in calls {
        let (s, _, text) = c.await.expect("call task");
        out.push((s, text));
    }
    out
}

#[tokio::test]
async fn openai_content_parts_are_joined_and_what_nova_cannot_do_is_refused() {
    let g = gateway().await;
    g.add_worker(local("w", engine("smollm2-135m", Script::Echo, 1), 10.0));
    let app = app(&g);
    let chat = |content: Value, extra: Value| {
        let mut body =
            json!({"model": "smollm2-135m", "messages": [{"role": "user", "content": content}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let parts = json!([{"type": "text", "text": "hello"}, {"type": "text", "text": "there"}]);
    let (s, v, _) =
        call(&app, "POST", "/v1/chat/completions", Some(TOKEN), Some(chat(parts, json!({})))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["content"], "hello\nthere",
        "the echo of the joined parts"
    );

    let many: Vec<Value> = (0..257).map(|_| json!({"type": "text", "text": "x"})).collect();
    let refused = [
        (chat(json!(many), json!({})), "at most 256"),
        (chat(json!([{"type": "input_audio", "input_audio": {}}]), json!({})), "not supported"),
        (chat(json!([{"type": "text"}]), json!({})), "no text"),
        (chat(json!("hi"), json!({"tools": [{"type": "function"}]})), "tools is not supported"),
        // Just under the body limit: 300,000 tool definitions, refused by name.
        (chat(json!("hi"), json!({"tools": vec![json!({}); 300_000]})), "tools is not supported"),
        // A part's type is quoted back cut to 32 characters, however long it was.
        (chat(json!([{"type": "x".repeat(900_000)}]), json!({})), "not supported"),
        (chat(json!("hi"), json!({"logprobs": true})), "logprobs"),
        (
            chat(json!("hi"), json!({"response_format": {"type": "json_schema"}})),
            "json_schema.schema",
        ),
        (chat(json!("hi"), json!({"functions": [{"name": "f"}]})), "functions"),
    ];
    for (body, says) in refused {
        let (s, v, _) = call(&app, "POST", "/v1/chat/completions", Some(TOKEN), Some(body)).await;
        assert_eq!(s, 400, "{says}: {v}");
        assert!(v.to_string().len() < 2_000, "the error echoes the input: {}", v.to_string().len());
        assert!(v["error"]["message"].as_str().unwrap_or_default().contains(says), "{says}: {v}");
    }
    // Empty tool lists and a plain-text response format are what clients send by default.
    let (s, v, _) = call(
        &app,
        "POST",
        "/v1/chat/completions",
        Some(TOKEN),
        Some(chat(json!("hi"), json!({"tools": [], "response_format": {"type": "text"}}))),
    )
    .await;
    assert_eq!(s, 200, "{v}");

    let (s, v, _) = call(&app, "GET", "/v1/models/smollm2-135m", Some(TOKEN), None).await;
    assert_eq!((s, v["id"].as_str()), (200, Some("smollm2-135m")), "{v}");
    let (s, v, _) = call(&app, "GET", "/v1/models/nope", Some(TOKEN), None).await;
    assert_eq!(s, 404, "{v}");
}
