//! Issue 9's client-error and hand-over fixes on the real binary and the real model: a stream
//! whose worker is killed midway goes on on another worker with the same greedy text, and
//! prompts no worker can take are a 4xx from the gateway, not a 502 after every worker failed.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{spawn_gateway, swarm_view, swarm_worker, Proc};

const TOKEN: &str = "handover-token";
const SECRET: &str = "handover-secret-for-tests";

fn worker(join: &str, name: &str) -> Proc {
    swarm_worker(join, SECRET, name, &[])
}

/// The swarm view's entries, whatever nesting the view uses for a worker's fields.
fn field<'a>(w: &'a Value, key: &str) -> &'a Value {
    if w[key].is_null() {
        &w["worker"][key]
    } else {
        &w[key]
    }
}

async fn swarm(url: &str) -> Value {
    swarm_view(url, TOKEN).await
}

async fn wait_ready(url: &str, n: usize) {
    crate::wait_ready(url, TOKEN, n).await
}

/// The name of the worker with a task in flight.
async fn busy_worker(url: &str) -> Option<String> {
    let v = swarm(url).await;
    v["workers"].as_array()?.iter().find_map(|w| {
        let depth = field(w, "queue_depth").as_u64().unwrap_or(0);
        (depth > 0).then(|| field(w, "name").as_str().unwrap_or_default().to_string())
    })
}

fn request() -> Value {
    json!({
        "messages": [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}],
        "stream": true,
        "temperature": 0,
        "max_tokens": 160,
        "nova": {"fanout": 1},
    })
}

/// Streams a chat; `after` chunks in, calls `fault` once. Returns the text, the final chunk's
/// trace, and whether the stream ended with `[DONE]`.
async fn stream_chat<F, Fut>(url: &str, after: usize, fault: F) -> (String, Value, bool)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut resp = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(TOKEN)
        .json(&request())
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("chat");
    assert_eq!(resp.status(), 200);
    let (mut buf, mut text, mut trace, mut done, mut chunks) =
        (String::new(), String::new(), Value::Null, false, 0usize);
    let mut fault = Some(fault);
    while let Some(bytes) = resp.chunk().await.expect("body") {
        buf.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let Some(data) = event.trim().strip_prefix("data: ") else { continue };
            if data == "[DONE]" {
                done = true;
                continue;
            }
            let v: Value = serde_json::from_str(data).expect("json event");
            assert!(v["error"].is_null(), "error event: {v}");
            if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
                text.push_str(t);
                chunks += 1;
                if chunks == after {
                    if let Some(f) = fault.take() {
                        f().await;
                    }
                }
            }
            if v["nova"].is_object() {
                trace = v["nova"].clone();
            }
        }
    }
    (text, trace, done)
}

#[tokio::test]
async fn a_stream_continues_on_another_worker_with_the_same_greedy_text() {
    let (_gateway, url, join) = spawn_gateway(TOKEN, SECRET, &[]);
    let mut a = worker(&join, "a");
    let mut b = worker(&join, "b");
    wait_ready(&url, 2).await;

    let (clean, _, done) = stream_chat(&url, 0, || async {}).await;
    assert!(done && clean.len() > 200, "a long fault-free answer: {clean:?}");

    let killed = std::sync::Mutex::new(None::<String>);
    let (text, trace, done) = stream_chat(&url, 20, || async {
        let name = busy_worker(&url).await.expect("a worker is streaming");
        let victim = if name == "a" { &mut a } else { &mut b };
        victim.child.kill().expect("kill");
        *killed.lock().unwrap() = Some(name);
    })
    .await;
    let killed = killed.lock().unwrap().clone().expect("a worker was killed");
    assert!(done, "the stream completed: {text:?}");
    assert_eq!(text, clean, "the same greedy text as without the fault");
    let h = &trace["handovers"][0];
    assert!(h.is_object(), "the hand-over is in the trace: {trace}");
    assert_eq!(trace["handovers"].as_array().map(Vec::len), Some(1), "{trace}");
    assert!(h["after_tokens"].as_u64().unwrap_or(0) >= 10, "{trace}");
    assert_ne!(h["from"], h["to"], "{trace}");
    eprintln!("killed {killed}; trace {trace}");
}

#[tokio::test]
async fn prompts_no_worker_can_take_are_4xx() {
    let (_gateway, url, join) = spawn_gateway(TOKEN, SECRET, &[]);
    let _a = worker(&join, "a");
    let _b = worker(&join, "b");
    wait_ready(&url, 2).await;
    let client = reqwest::Client::new();
    let post = |body: Value| {
        client
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth(TOKEN)
            .json(&body)
            .timeout(Duration::from_secs(60))
            .send()
    };
    // ~12k tokens: under the 64 KiB byte limit, over the 2,048-token context.
    let long = "the quick brown fox jumps over the lazy dog ".repeat(1400);
    for stream in [false, true] {
        let r = post(json!({"messages": [{"role": "user", "content": long}], "stream": stream}))
            .await
            .expect("post");
        let status = r.status().as_u16();
        let v: Value = r.json().await.expect("json");
        assert_eq!((status, v["error"]["code"].as_str()), (400, Some("prompt_too_long")), "{v}");
    }
    let r =
        post(json!({"messages": [{"role": "user", "content": "a\u{0}b"}]})).await.expect("post");
    let status = r.status().as_u16();
    let v: Value = r.json().await.expect("json");
    assert_eq!((status, v["error"]["code"].as_str()), (422, Some("nul_character")), "{v}");
    // The swarm is fine afterwards.
    let r = post(json!({"messages": [{"role": "user", "content": "What is the capital of France?"}], "temperature": 0, "max_tokens": 16}))
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
}
