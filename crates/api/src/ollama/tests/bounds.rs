//! What nova cannot do, and bodies out of bounds: a clear 4xx in Ollama's shape, nothing run.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::{app, call, post, TOKEN};

fn chat(extra: Value) -> Value {
    serde_json::from_str(&req("/api/chat", extra)).expect("json")
}

#[tokio::test]
async fn what_nova_cannot_do_is_refused_with_400_saying_so() {
    let (app, swarm) = app();
    let cases = [
        ("/api/generate", json!({"model": "m", "prompt": "p", "format": "xml"}), "format"),
        ("/api/chat", chat(json!({"format": ["json"]})), "format"),
        (
            "/api/chat",
            chat(
                json!({"messages": [{"role": "user", "content": "What is this?", "images": ["aGk="]}]}),
            ),
            "messages[0].images",
        ),
        ("/api/generate", json!({"model": "m", "prompt": "p", "images": ["aGk="]}), "images"),
        (
            "/api/chat",
            chat(json!({"tools": [{"type": "function", "function": {"name": "f"}}]})),
            "tools",
        ),
        (
            "/api/chat",
            chat(
                json!({"messages": [{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}]}),
            ),
            "messages[0].tool_calls",
        ),
        ("/api/chat", chat(json!({"messages": [{"role": "tool", "content": "42"}]})), "tool"),
        ("/api/chat", chat(json!({"think": true})), "think"),
        ("/api/chat", chat(json!({"think": "high"})), "think"),
        ("/api/chat", chat(json!({"logprobs": true})), "logprobs"),
        ("/api/generate", json!({"model": "m", "prompt": "p", "top_logprobs": 3}), "logprobs"),
        (
            "/api/generate",
            json!({"model": "m", "prompt": "def f(", "suffix": "return x"}),
            "suffix",
        ),
        (
            "/api/generate",
            json!({"model": "m", "prompt": "p", "template": "{{ .Prompt }}"}),
            "template",
        ),
        ("/api/generate", json!({"model": "m", "prompt": "p", "context": [1, 2, 3]}), "context"),
        ("/api/generate", json!({"model": "m", "prompt": "p", "raw": true, "system": "s"}), "raw"),
        ("/api/chat", chat(json!({"options": {"mirostat": 2}})), "options.mirostat"),
        ("/api/chat", chat(json!({"options": {"typical_p": 0.7}})), "options.typical_p"),
        ("/api/chat", chat(json!({"options": {"min_p": 0.05}})), "options.min_p"),
        // A misspelt routing option would otherwise route the default way, silently.
        ("/api/chat", chat(json!({"options": {"fanuot": 3}})), "options.fanuot"),
        ("/api/chat", chat(json!({"model": ""})), "model is required"),
        ("/api/chat", chat(json!({"model": ":latest"})), "model is required"),
    ];
    for (path, body, needle) in cases {
        let a = post(&app, path, &body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path} {body}: {}", a.text);
        let e = a.error();
        assert!(e.contains(needle), "{path} {body}: {e}");
    }
    assert!(swarm.jobs().is_empty(), "nothing was run");
}

/// The smallest valid request to `path`, with `extra`'s fields set.
fn req(path: &str, extra: Value) -> String {
    let mut body = if path == "/api/chat" {
        json!({"model": "smollm2-135m", "messages": [{"role": "user", "content": "Hi"}]})
    } else {
        json!({"model": "smollm2-135m", "prompt": "Hi"})
    };
    for (k, v) in extra.as_object().expect("an object") {
        body[k] = v.clone();
    }
    body.to_string()
}

/// A request to `path` with `n` routing tags, each `tag`, written out without building them.
fn tags(path: &str, n: usize, tag: &str) -> String {
    let mut body = req(path, json!({}));
    body.pop();
    let list = format!("{tag:?},").repeat(n);
    format!(r#"{body},"options":{{"tags":[{}]}}}}"#, list.trim_end_matches(','))
}

/// Requests to `path` that must fail, with the status and a phrase the error must hold.
fn bad_requests(path: &str) -> Vec<(String, StatusCode, &'static str)> {
    let huge = "x".repeat(900_000);
    let opts = |o: Value| req(path, json!({ "options": o }));
    let bad = StatusCode::BAD_REQUEST;
    let mut cases = vec![
        // Just under the 1 MiB body limit: the parser stops reading at the 65th tag.
        (tags(path, 170_000, "geo"), bad, "tags"),
        (tags(path, 180_000, "geo"), StatusCode::PAYLOAD_TOO_LARGE, "exceeds"),
        // Past the configured bound, or not a tag at all.
        (tags(path, 9, "geo"), bad, "at most 8 tags"),
        (tags(path, 1, "no spaces"), bad, "tags"),
        (tags(path, 1, &"t".repeat(33)), bad, "tags"),
        (req(path, json!({ "model": huge.clone() })), bad, "model: at most 256 bytes"),
        (opts(json!({ "stop": vec!["s"; 10_000] })), bad, "stop"),
        (opts(json!({ "stop": [huge.clone()] })), bad, "stop"),
        (opts(Value::Object([(huge, json!(1))].into_iter().collect())), bad, "not an option"),
        // Repeated fields.
        (
            r#"{"model":"m","prompt":"p","messages":[],"options":{"temperature":0,"temperature":1}}"#
                .into(),
            bad,
            "duplicate field `temperature`",
        ),
        (r#"{"model":"m","model":"n","prompt":"p","messages":[]}"#.into(), bad, "duplicate field `model`"),
        // Wrong types.
        (opts(json!({"fanout": "two"})), bad, "fanout"),
        (opts(json!({"fanout": 1e30})), bad, "fanout"),
        (opts(json!({"fanout": -1})), bad, "fanout"),
        (opts(json!({"tags": "geo"})), bad, "tags"),
        (opts(json!({"tags": [1, 2]})), bad, "tags"),
        (opts(json!({"strategy": "majority"})), bad, "strategy"),
        (opts(json!({"debug": "yes"})), bad, "debug"),
        (opts(json!({"temperature": "hot"})), bad, "temperature"),
        (opts(json!([1, 2])), bad, "options"),
        (req(path, json!({"stream": "yes"})), bad, "stream"),
        (req(path, json!({"model": 7})), bad, "model"),
        (req(path, json!({"format": "yaml"})), bad, "format"),
        (r#"{"model": "m", "options": {"top_k": 1"#.into(), bad, "EOF"),
        ("[]".into(), bad, "invalid"),
        ("".into(), bad, "EOF"),
        // Values out of range, in Ollama's names where nova's differ.
        (opts(json!({"num_predict": 0})), bad, "num_predict"),
        (opts(json!({"num_predict": -3})), bad, "num_predict"),
        (opts(json!({"num_predict": 5_000_000_000_i64})), bad, "num_predict"),
        (opts(json!({"temperature": 9})), bad, "temperature"),
        (opts(json!({"top_p": 0})), bad, "top_p"),
        (opts(json!({"top_k": -1})), bad, "top_k"),
        (opts(json!({"top_k": 5000})), bad, "top_k"),
        (opts(json!({"repeat_penalty": 40})), bad, "repeat_penalty"),
    ];
    if path == "/api/chat" {
        let user = |content: &str| json!({"role": "user", "content": content});
        cases.extend([
            (
                req(path, json!({"messages": [user(&"x".repeat(900_000))]})),
                bad,
                "the prompt is 900000 bytes",
            ),
            (req(path, json!({"messages": vec![user("a"); 300]})), bad, "300 messages"),
            (req(path, json!({"messages": [user("a\u{0}b")]})), bad, "NUL"),
            (req(path, json!({"messages": "Hi"})), bad, "messages"),
            (req(path, json!({"messages": [{"content": "Hi"}]})), bad, "role"),
            (req(path, json!({"tools": {}})), bad, "tools"),
            // Just under the body limit of tool definitions: refused, never parsed into work.
            (req(path, json!({"tools": vec![json!({}); 300_000]})), bad, "tools"),
        ]);
    } else {
        cases.extend([
            (req(path, json!({"system": "x".repeat(900_000)})), bad, "the prompt is"),
            (req(path, json!({"prompt": "a\u{0}b"})), bad, "NUL"),
            (req(path, json!({"prompt": ["Hi"]})), bad, "prompt"),
            (req(path, json!({"raw": "yes"})), bad, "raw"),
        ]);
    }
    cases
}

#[tokio::test]
async fn oversized_repeated_and_mistyped_fields_get_a_clear_4xx() {
    let (app, swarm) = app();
    for path in ["/api/chat", "/api/generate"] {
        for (body, status, needle) in bad_requests(path) {
            let a = call(&app, "POST", path, Some(TOKEN), Some(body.clone())).await;
            let shown: String = body.chars().take(120).collect();
            assert_eq!(a.status, status, "{path} {shown}: {}", a.text);
            let e = a.error();
            let start: String = e.chars().take(300).collect();
            assert!(e.contains(needle), "{path} {shown}: {start}");
            assert!(e.len() < 2_000, "{path} {shown}: an error echoes {} bytes", e.len());
        }
    }
    assert!(swarm.jobs().is_empty(), "{} jobs ran", swarm.jobs().len());
}
