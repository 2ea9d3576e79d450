//! `n` choices and JSON response formats through the real HTTP router and gateway, with
//! scripted engines. The real model enforces the formats in the engine's and the CLI's tests.

use nova_engine::Script;
use serde_json::{json, Value};

mod common;
use common::{app, call, engine, gateway, local, TOKEN};

fn chat(extra: Value) -> Value {
    let mut body = json!({"messages": [{"role": "user", "content": "hi"}],
        "nova": {"strategy": "race", "fanout": 1}});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    body
}

/// The `data:` payloads of an SSE body, `[DONE]` as a string.
fn sse(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap_or_else(|_| json!(d)))
        .collect()
}

#[tokio::test]
async fn n_choices_run_side_by_side_on_the_swarms_devices() {
    let g = gateway().await;
    // One slot each and 20 ms a word: two choices at once need both devices.
    g.add_worker(local("a", engine("m", Script::Fixed("one two three".into()), 20), 10.0));
    g.add_worker(local("b", engine("m", Script::Fixed("one two three".into()), 20), 10.0));
    let app = app(&g);
    let (s, v, _) =
        call(&app, "POST", "/v1/chat/completions", Some(TOKEN), Some(chat(json!({"n": 2})))).await;
    assert_eq!(s, 200, "{v}");
    let choices = v["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 2, "{v}");
    let mut winners = Vec::new();
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i, "{v}");
        assert_eq!(c["message"]["content"], "one two three", "{v}");
        assert_eq!(c["finish_reason"], "stop", "{v}");
        winners.push(c["nova"]["winner"].as_str().expect("each choice's own trace").to_string());
    }
    winners.sort();
    assert_eq!(winners, ["a", "b"], "the choices ran on both devices: {v}");
    let one = v["usage"]["completion_tokens"].as_u64().expect("usage");
    assert!(one >= 6 && v["usage"]["total_tokens"].as_u64() > Some(one), "both counted: {v}");
    assert_eq!(v["nova"], choices[0]["nova"], "the top-level trace is the first choice's");
}

#[tokio::test]
async fn n_streamed_choices_interleave_by_index_and_end_once() {
    let g = gateway().await;
    g.add_worker(local("a", engine("m", Script::Fixed("one two three".into()), 10), 10.0));
    g.add_worker(local("b", engine("m", Script::Fixed("one two three".into()), 10), 10.0));
    let app = app(&g);
    let body = chat(json!({"n": 2, "stream": true, "stream_options": {"include_usage": true}}));
    let (s, _, text) = call(&app, "POST", "/v1/chat/completions", Some(TOKEN), Some(body)).await;
    assert_eq!(s, 200, "{text}");
    let events = sse(&text);
    assert_eq!(events.last(), Some(&json!("[DONE]")), "{text}");
    assert_eq!(events.iter().filter(|e| **e == json!("[DONE]")).count(), 1, "{text}");
    for i in 0..2 {
        let of_i: Vec<&Value> =
            events.iter().filter(|e| e["choices"][0]["index"] == json!(i)).collect();
        let text: String =
            of_i.iter().filter_map(|e| e["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, "one two three", "choice {i}");
        assert_eq!(of_i[0]["choices"][0]["delta"]["role"], "assistant", "choice {i} opens");
        let finishes = of_i.iter().filter(|e| !e["choices"][0]["finish_reason"].is_null()).count();
        assert_eq!(finishes, 1, "choice {i} ends once");
    }
    let usage = events.iter().find(|e| e["usage"].is_object()).expect("a usage chunk");
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(events[events.len() - 2], *usage, "usage comes after every choice's end");
}

#[tokio::test]
async fn n_out_of_bounds_is_refused_before_any_work() {
    let g = gateway().await;
    g.add_worker(local("a", engine("m", Script::Echo, 0), 10.0));
    let app = app(&g);
    for n in [json!(0), json!(9), json!(1_000_000), json!(-1), json!("2")] {
        let (s, v, _) =
            call(&app, "POST", "/v1/chat/completions", Some(TOKEN), Some(chat(json!({"n": n}))))
                .await;
        assert!(s == 400 || s == 422, "n = {n}: {s} {v}");
    }
    let (_, metrics, text) = call(&app, "GET", "/metrics", Some(TOKEN), None).await;
    assert!(!text.contains("nova_attempts_total{"), "nothing ran: {metrics}");
}

#[tokio::test]
async fn response_formats_are_taken_and_bad_ones_are_refused_by_what_is_wrong() {
    let g = gateway().await;
    g.add_worker(local("a", engine("m", Script::Fixed("{}".into()), 0), 10.0));
    let app = app(&g);
    let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
    let ok = [
        json!({"type": "text"}),
        json!({"type": "json_object"}),
        json!({"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": true}}),
    ];
    for f in ok {
        let body = chat(json!({"response_format": f}));
        let (s, v, _) = call(&app, "POST", "/v1/chat/completions", Some(TOKEN), Some(body)).await;
        assert_eq!(s, 200, "{f}: {v}");
    }
    let huge = json!({"type": "object", "description": "x".repeat(900_000)});
    let refused = [
        (json!({"type": "json_schema"}), 400, "json_schema.schema"),
        (json!({"type": "json_schema", "json_schema": {"schema": "x"}}), 400, "JSON object"),
        (json!({"type": "yaml"}), 400, "not supported"),
        (json!({"type": "x".repeat(500_000)}), 400, "not supported"),
        (json!("json"), 400, "an object"),
        (json!({"type": "json_schema", "json_schema": {"schema": huge}}), 422, "at most 16384"),
    ];
    for (f, status, says) in refused {
        let (s, v, _) = call(
            &app,
            "POST",
            "/v1/chat/completions",
            Some(TOKEN),
            Some(chat(json!({"response_format": f}))),
        )
        .await;
        assert_eq!(s, status, "{says}: {v}");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(says), "{says}: {v}");
        assert!(v.to_string().len() < 2_000, "the error echoes the input");
    }
    // A JSON answer cannot also ignore the end of text.
    let body = chat(json!({"response_format": {"type": "json_object"}, "ignore_eos": true}));
    let (s, v, _) = call(&app, "POST", "/v1/chat/completions", Some(TOKEN), Some(body)).await;
    assert_eq!(s, 422, "{v}");
    assert!(v["error"]["message"].as_str().unwrap_or_default().contains("ignore_eos"), "{v}");
}

#[tokio::test]
async fn legacy_completions_continue_raw_text_whole_and_streamed() {
    let g = gateway().await;
    g.add_worker(local("a", engine("m", Script::Echo, 0), 10.0));
    g.add_worker(local("b", engine("m", Script::Echo, 0), 10.0));
    let app = app(&g);
    let post = |body: Value| {
        let app = app.clone();
        async move { call(&app, "POST", "/v1/completions", Some(TOKEN), Some(body)).await }
    };
    let (s, v, _) = post(json!({"prompt": "Once upon", "max_tokens": 8})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "Once upon", "the echo engine repeats the raw prompt");
    assert_eq!(v["choices"][0]["logprobs"], Value::Null);
    assert!(v["usage"]["total_tokens"].as_u64() > Some(0), "{v}");

    // Two prompts, two choices each, echoed: choice p * n + j is sample j of prompt p.
    let body = json!({"prompt": ["A", "B"], "n": 2, "echo": true, "nova": {"fanout": 1}});
    let (s, v, _) = post(body).await;
    assert_eq!(s, 200, "{v}");
    let texts: Vec<&str> = v["choices"]
        .as_array()
        .expect("choices")
        .iter()
        .filter_map(|c| c["text"].as_str())
        .collect();
    assert_eq!(texts, ["AA", "AA", "BB", "BB"], "{v}");

    let body = json!({"prompt": "Hi", "stream": true, "echo": true,
        "stream_options": {"include_usage": true}});
    let (s, _, text) = post(body).await;
    assert_eq!(s, 200, "{text}");
    let events = sse(&text);
    let streamed: String = events.iter().filter_map(|e| e["choices"][0]["text"].as_str()).collect();
    assert_eq!(streamed, "HiHi", "{text}");
    assert!(events.iter().all(|e| e == "[DONE]" || e["object"] == "text_completion"), "{text}");
    assert_eq!(events.last(), Some(&json!("[DONE]")));
    assert!(events[events.len() - 2]["usage"].is_object(), "{text}");
}

#[tokio::test]
async fn legacy_completions_refuse_what_nova_cannot_do_and_oversized_lists() {
    let g = gateway().await;
    g.add_worker(local("a", engine("m", Script::Echo, 0), 10.0));
    let app = app(&g);
    // Just under the body limit.
    let many: Vec<Value> = (0..250_000).map(|_| json!("x")).collect();
    let refused = [
        (json!({"prompt": [1, 2, 3]}), 400, "token ids"),
        (json!({"prompt": [[1, 2], [3]]}), 400, "token ids"),
        (json!({"prompt": []}), 400, "empty list"),
        (json!({"prompt": {"text": "x"}}), 400, "text or a list"),
        (json!({"max_tokens": 4}), 400, "missing field `prompt`"),
        (json!({"prompt": many}), 400, "at most 8"),
        (json!({"prompt": ["a", "b", "c"], "n": 3}), 400, "9 choices"),
        (json!({"prompt": "def f(", "suffix": "return 1"}), 400, "suffix"),
        (json!({"prompt": "x", "logprobs": 5}), 400, "logprobs"),
        (json!({"prompt": "x", "logit_bias": {"50256": -100}}), 400, "logit_bias"),
        (json!({"prompt": "x", "best_of": 3}), 400, "best_of"),
        (json!({"prompt": ""}), 422, "empty"),
        (json!({"prompt": "x".repeat(70_000)}), 422, "65536"),
        (json!({"prompt": "x", "max_tokens": 100_000}), 422, "max_tokens"),
    ];
    for (body, status, says) in refused {
        let (s, v, _) = call(&app, "POST", "/v1/completions", Some(TOKEN), Some(body)).await;
        assert_eq!(s, status, "{says}: {v}");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(says), "{says}: {v}");
        assert!(v.to_string().len() < 2_000, "the error echoes the input");
    }
    let (s, _, _) = call(&app, "POST", "/v1/completions", None, Some(json!({"prompt": "x"}))).await;
    assert_eq!(s, 401, "the token is required");
}
