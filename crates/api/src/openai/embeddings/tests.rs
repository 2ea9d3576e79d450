//! `/v1/embeddings` behind the real router, in front of a fake swarm that records what it is
//! asked: parsing, bounds, encodings and errors. The real model and the official client run
//! against a real gateway in the CLI's end-to-end tests.

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    body::Body,
    http::{Request, StatusCode},
    Router,
};
use futures_util::future::BoxFuture;
use http_body_util::BodyExt as _;
use nova_proto::{embed::decode_f32le, Embeddings, Limits, SwarmView};
use serde_json::{json, Value};
use tower::ServiceExt as _;

use crate::{
    router, AppState, Attempt, EmbedJob, EmbedResult, InferError, Inference, Job, JobEvents,
};

const TOKEN: &str = "t0ken";
const WIDTH: usize = 4;

/// A swarm whose one worker `phone` serves `smollm2-135m`; `busy` is at capacity, and an
/// input saying "too long" is refused by the worker as a model's window would refuse it.
#[derive(Default)]
struct Fake {
    jobs: Mutex<Vec<EmbedJob>>,
}

impl Fake {
    fn jobs(&self) -> Vec<EmbedJob> {
        self.jobs.lock().expect("lock").clone()
    }
}

/// A vector that names its input: its length and first byte, normalised.
fn vector(text: &str) -> Vec<f32> {
    let mut v = vec![text.len() as f32, f32::from(text.as_bytes()[0]), 1.0, -0.5];
    nova_proto::embed::l2_normalize(&mut v);
    v
}

impl Inference for Fake {
    fn run(&self, _job: Job) -> BoxFuture<'_, Result<JobEvents, InferError>> {
        Box::pin(async { Err(InferError::Shutdown) })
    }

    fn models(&self) -> Vec<String> {
        vec!["smollm2-135m".into()]
    }

    fn swarm(&self) -> SwarmView {
        SwarmView {
            now_ms: 0,
            stale_after_ms: 0,
            forget_after_ms: None,
            models: self.models(),
            workers: Vec::new(),
            pools: vec![],
        }
    }

    fn metrics(&self) -> String {
        String::new()
    }

    fn embed(&self, job: EmbedJob) -> BoxFuture<'_, Result<EmbedResult, InferError>> {
        self.jobs.lock().expect("lock").push(job.clone());
        Box::pin(async move {
            match job.model.as_deref() {
                None | Some("smollm2-135m") => {}
                Some("busy") => return Err(InferError::Overloaded { retry_after_s: 2 }),
                Some(m) => {
                    return Err(InferError::UnknownModel {
                        model: m.into(),
                        available: "smollm2-135m".into(),
                    })
                }
            }
            if let Some(i) = job.request.inputs.iter().position(|t| t.contains("too long")) {
                return Err(InferError::Rejected {
                    code: "prompt_too_long",
                    message: format!("input[{i}] is 3000 tokens; smollm2-135m embeds at most 2048"),
                });
            }
            let vectors: Vec<Vec<f32>> = job.request.inputs.iter().map(|t| vector(t)).collect();
            Ok(EmbedResult {
                embeddings: Embeddings {
                    model: "smollm2-135m".into(),
                    prompt_tokens: 3 * vectors.len() as u32,
                    vectors,
                },
                worker: "phone".into(),
                attempts: vec![Attempt {
                    worker: "phone".into(),
                    outcome: "won".into(),
                    latency_ms: 4.0,
                    ..Attempt::default()
                }],
                latency_ms: 5.0,
            })
        })
    }
}

fn app() -> (Router, Arc<Fake>) {
    let swarm = Arc::new(Fake::default());
    let inference: Arc<dyn Inference> = swarm.clone();
    (router(AppState::new(inference, TOKEN, Limits::default())), swarm)
}

struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

impl Answer {
    /// An OpenAI-shaped error's code and message, after checking its type.
    fn error(&self) -> (String, String) {
        let e = &self.body["error"];
        assert_eq!(e["type"], "invalid_request_error", "{}", self.body);
        let s =
            |k: &str| e[k].as_str().unwrap_or_else(|| panic!("no {k}: {}", self.body)).to_owned();
        (s("code"), s("message"))
    }
}

async fn send(app: &Router, body: String, token: Option<&str>) -> Answer {
    let mut req = Request::post("/v1/embeddings");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).expect("request"))
        .await
        .expect("infallible");
    let status = resp.status();
    let retry_after =
        resp.headers().get("retry-after").map(|v| v.to_str().expect("ascii").to_owned());
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
    Answer { status, retry_after, body }
}

async fn post(app: &Router, body: Value) -> Answer {
    send(app, body.to_string(), Some(TOKEN)).await
}

/// Posts `body` and expects a 400 with `code`; returns the message.
async fn refused(app: &Router, body: Value, code: &str) -> String {
    let a = post(app, body.clone()).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.body);
    let (got, message) = a.error();
    assert_eq!(got, code, "{body}: {message}");
    message
}

#[tokio::test]
async fn a_list_gives_one_vector_per_input_in_order_from_one_model() {
    let (app, swarm) = app();
    let a =
        post(&app, json!({"input": ["hello", "a longer text", "hello"], "model": "nova"})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let b = &a.body;
    assert_eq!(b["object"], "list");
    assert_eq!(b["model"], "smollm2-135m", "names the model that computed them");
    assert_eq!(b["usage"], json!({"prompt_tokens": 9, "total_tokens": 9}));
    assert_eq!(b["nova"]["worker"], "phone");
    assert_eq!(b["nova"]["dimensions"], WIDTH);
    let data = b["data"].as_array().expect("data");
    assert_eq!(data.len(), 3);
    for (i, (d, text)) in data.iter().zip(["hello", "a longer text", "hello"]).enumerate() {
        assert_eq!(d["object"], "embedding");
        assert_eq!(d["index"], i);
        let v: Vec<f32> = serde_json::from_value(d["embedding"].clone()).expect("floats");
        assert_eq!(v, vector(text), "f32s print exactly (shortest form) and read back");
    }
    // "nova" and no model both mean any model.
    let job = swarm.jobs().pop().expect("a job");
    assert_eq!(job.model, None);
    assert_eq!(job.request.inputs, ["hello", "a longer text", "hello"]);

    let a = post(&app, json!({"input": "one string", "model": "smollm2-135m"})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(swarm.jobs().pop().expect("a job").model.as_deref(), Some("smollm2-135m"));
}

#[tokio::test]
async fn base64_is_little_endian_f32_as_openai_sends_it() {
    let (app, _) = app();
    let floats = post(&app, json!({"input": ["abc", "xyz!"]})).await;
    let b64 = post(&app, json!({"input": ["abc", "xyz!"], "encoding_format": "base64"})).await;
    assert_eq!(b64.status, StatusCode::OK, "{}", b64.body);
    for i in 0..2 {
        let s = b64.body["data"][i]["embedding"].as_str().expect("a base64 string");
        let v = decode_f32le(s, WIDTH).expect("base64 of f32s");
        let f: Vec<f32> =
            serde_json::from_value(floats.body["data"][i]["embedding"].clone()).expect("floats");
        assert_eq!(v, f);
    }
    let float = post(&app, json!({"input": "abc", "encoding_format": "float"})).await;
    assert!(float.body["data"][0]["embedding"].is_array());
    let msg = refused(
        &app,
        json!({"input": "abc", "encoding_format": "binary".repeat(1000)}),
        "invalid_encoding_format",
    )
    .await;
    assert!(msg.contains("\"binarybinary") && msg.len() < 120, "cut short: {msg}");
}

#[tokio::test]
async fn token_ids_are_refused_by_name() {
    let (app, swarm) = app();
    for input in [json!([1, 2, 3]), json!([[1, 2], [3]]), json!(["text", 5]), json!([-1, 0.5])] {
        let msg = refused(&app, json!({ "input": input }), "unsupported_input").await;
        assert!(msg.contains("token ids") && msg.contains("send text"), "{msg}");
    }
    // Token ids past the count bound are still named as token ids.
    let ids: Vec<u32> = (0..100_000).collect();
    refused(&app, json!({ "input": ids }), "unsupported_input").await;
    assert!(swarm.jobs().is_empty(), "nothing reached the swarm");
}

#[tokio::test]
async fn malformed_inputs_are_400s_that_say_what_is_wanted() {
    let (app, swarm) = app();
    for (body, wanted) in [
        (json!({}), "missing field `input`"),
        (json!({"input": null}), "a string or a list of strings"),
        (json!({"input": 5}), "a string or a list of strings"),
        (json!({"input": {"text": "a"}}), "a string or a list of strings"),
        (json!({"input": ["a", null]}), "a string"),
        (json!({"input": ["a", {"b": 1}]}), "a string"),
        (json!({"input": "a", "dimensions": -3}), "dimensions"),
    ] {
        let a = post(&app, body.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}");
        let (code, msg) = a.error();
        assert_eq!(code, "invalid_json");
        assert!(msg.contains(wanted), "{body}: {msg}");
    }
    // A field given twice is refused, not silently overwritten.
    let a = send(&app, r#"{"input": "a", "input": ["b", "c"]}"#.into(), Some(TOKEN)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.error().1.contains("duplicate field `input`"), "{}", a.body);
    assert!(swarm.jobs().is_empty());
}

#[tokio::test]
async fn every_bound_is_a_400_naming_the_input() {
    let (app, swarm) = app();
    let limits = Limits::default();
    assert_eq!(
        refused(&app, json!({"input": []}), "invalid_input").await,
        "input is an empty list; give a string or a list of strings"
    );
    assert_eq!(
        refused(&app, json!({"input": ""}), "invalid_input").await,
        "input[0] is an empty string"
    );
    assert_eq!(
        refused(&app, json!({"input": ["a", "b", ""]}), "invalid_input").await,
        "input[2] is an empty string"
    );
    assert_eq!(
        refused(&app, json!({"input": ["a", "b\u{0}c"]}), "nul_character").await,
        "input[1] contains a NUL character (\\u0000)"
    );
    let long = "x".repeat(limits.max_prompt_bytes + 1);
    assert_eq!(
        refused(&app, json!({"input": ["a", long]}), "input_too_long").await,
        format!(
            "input[1] is {} bytes; the limit is {}",
            limits.max_prompt_bytes + 1,
            limits.max_prompt_bytes
        )
    );
    // Each within its bound, too much together.
    let full = "x".repeat(limits.max_prompt_bytes);
    let msg = refused(&app, json!({ "input": vec![full; 9] }), "input_too_long").await;
    assert!(msg.starts_with("the inputs are 589824 bytes together"), "{msg}");
    let msg = refused(&app, json!({ "input": vec!["a"; 257] }), "too_many_inputs").await;
    assert_eq!(msg, "input has 257 items; at most 256 are embedded per request");
    assert!(swarm.jobs().is_empty(), "nothing reached the swarm");
    let a = post(&app, json!({ "input": vec!["a"; 256] })).await;
    assert_eq!(a.status, StatusCode::OK, "exactly the bound: {}", a.body);
}

#[tokio::test]
async fn three_hundred_thousand_tiny_inputs_are_refused_by_count_cheaply() {
    let (app, swarm) = app();
    // 300,000 empty strings: 900 KB, just under the 1 MiB body limit.
    let body = format!(r#"{{"input":[{}""]}}"#, "\"\",".repeat(299_999));
    assert!(body.len() < crate::MAX_BODY && body.len() > 899_000, "{}", body.len());
    let t0 = Instant::now();
    let a = send(&app, body, Some(TOKEN)).await;
    let took = t0.elapsed();
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.error(),
        (
            "too_many_inputs".into(),
            "input has 300000 items; at most 256 are embedded per request".into()
        )
    );
    // One pass over the body, nothing stored past the bound (debug build, shared CPU).
    assert!(took.as_millis() < 2000, "{took:?}");
    assert!(swarm.jobs().is_empty());
    // Past the body limit: 413 before any parsing.
    let body = format!(r#"{{"input":[{}""]}}"#, "\"\",".repeat(400_000));
    let a = send(&app, body, Some(TOKEN)).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn dimensions_must_be_the_native_width() {
    let (app, _) = app();
    let a = post(&app, json!({"input": "abc", "dimensions": WIDTH})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let msg = refused(&app, json!({"input": "abc", "dimensions": 2}), "invalid_dimensions").await;
    assert_eq!(
        msg,
        "dimensions 2 is not supported: smollm2-135m gives 4-dimensional vectors; omit \
         dimensions or send 4"
    );
    refused(&app, json!({"input": "abc", "dimensions": 0}), "invalid_dimensions").await;
}

#[tokio::test]
async fn swarm_errors_keep_their_status() {
    let (app, _) = app();
    let a = post(&app, json!({"input": "a", "model": "no-such-model"})).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.body["error"]["code"], "model_not_found");
    let a = post(&app, json!({"input": "a", "model": "busy"})).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.retry_after.as_deref(), Some("2"));
    // The worker found an input longer than its model's window: the client's fault, by index.
    let msg = refused(&app, json!({"input": ["ok", "too long"]}), "prompt_too_long").await;
    assert!(msg.starts_with("input[1] is 3000 tokens"), "{msg}");
    // A model name past the bound is refused without being echoed.
    let msg =
        refused(&app, json!({"input": "a", "model": "m".repeat(5000)}), "invalid_model").await;
    assert_eq!(msg, "the model name is 5000 bytes; at most 256");
    let a = send(&app, json!({"input": "a"}).to_string(), None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = send(&app, json!({"input": "a"}).to_string(), Some("wrong")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_gateway_without_embeddings_says_so() {
    struct Bare;
    impl Inference for Bare {
        fn run(&self, _job: Job) -> BoxFuture<'_, Result<JobEvents, InferError>> {
            Box::pin(async { Err(InferError::Shutdown) })
        }
        fn models(&self) -> Vec<String> {
            Vec::new()
        }
        fn swarm(&self) -> SwarmView {
            Fake::default().swarm()
        }
        fn metrics(&self) -> String {
            String::new()
        }
    }
    let app = router(AppState::new(Arc::new(Bare), TOKEN, Limits::default()));
    let a = post(&app, json!({"input": "a"})).await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY);
    assert_eq!(a.body["error"]["message"], "this gateway does not compute embeddings");
}
