//! `/api/chat` and `/api/generate`: framing, option mapping, errors.

use axum::http::StatusCode;
use nova_proto::{ChatMessage, Limits, Prompt, ResponseFormat, Role, SamplingParams, Strategy};
use serde_json::{json, Value};

use super::{app, call, get, post, TOKEN};

fn ask(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Capital of France?"}]})
}

#[tokio::test]
async fn a_chat_streams_ndjson_by_default_and_ends_with_the_counts() {
    let (app, swarm) = app();
    let a = post(&app, "/api/chat", &ask("smollm2-135m:latest")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let lines = a.lines();
    assert_eq!(lines.len(), 3, "{}", a.text);
    for (line, text) in lines.iter().zip(["Par", "is"]) {
        assert_eq!(line["done"], false, "{line}");
        assert_eq!(line["message"], json!({"role": "assistant", "content": text}));
        // The name as the client sent it, as Ollama echoes it.
        assert_eq!(line["model"], "smollm2-135m:latest");
        assert!(line["created_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{line}");
    }
    let last = &lines[2];
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "stop");
    assert_eq!(last["message"], json!({"role": "assistant", "content": ""}));
    assert_eq!(last["prompt_eval_count"], 7);
    assert_eq!(last["eval_count"], 2);
    assert_eq!(last["prompt_eval_duration"], 3_000_000);
    assert_eq!(last["eval_duration"], 20_000_000);
    assert_eq!(last["total_duration"], 25_500_000);
    assert_eq!(last["load_duration"], 0);
    assert_eq!(last["nova"]["winner"], "phone");

    let job = swarm.job();
    assert_eq!(job.model.as_deref(), Some("smollm2-135m"), "the default tag is dropped");
    assert!(job.stream);
    assert_eq!(job.request.prompt, Prompt::Chat(vec![ChatMessage::user("Capital of France?")]));
    assert_eq!(job.request.params, SamplingParams::default());
    assert_eq!((job.strategy, job.fanout, job.tags.len()), (Strategy::Auto, 2, 0));
}

#[tokio::test]
async fn stream_false_answers_one_object_and_nova_means_any_model() {
    let (app, swarm) = app();
    let mut body = ask("nova");
    body["stream"] = json!(false);
    let a = post(&app, "/api/chat", &body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.headers["content-type"], "application/json");
    let v = a.json();
    assert_eq!(v["message"], json!({"role": "assistant", "content": "Paris"}));
    assert_eq!((v["done"].clone(), v["done_reason"].clone()), (json!(true), json!("stop")));
    assert_eq!(v["model"], "nova");
    assert_eq!(v["eval_count"], 2);
    let job = swarm.job();
    assert_eq!((job.model, job.stream), (None, false));
}

#[tokio::test]
async fn options_map_onto_sampling_and_routing() {
    let (app, swarm) = app();
    let mut body = ask("smollm2-135m");
    body["messages"] = json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi", "images": []},
        {"role": "assistant", "content": "Hello.", "thinking": "dropped"},
        {"role": "user", "content": "Capital of France?"},
    ]);
    body["options"] = json!({
        "temperature": 0, "top_p": 0.5, "top_k": 7, "seed": 42, "num_predict": 12,
        "stop": ["\n", "User:"], "repeat_penalty": 1.3, "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "strategy": "vote", "fanout": 3, "tags": ["Geo", " geo ", "capitals"], "debug": true,
        "rag": true,
        // What clients that send every option send: accepted, left to each worker.
        "num_ctx": 2048, "num_thread": 4, "num_gpu": 0, "use_mmap": true, "mirostat": 0,
        "mirostat_tau": 5.0, "typical_p": 1.0, "min_p": 0.0, "tfs_z": 1, "repeat_last_n": 64,
    });
    body["tools"] = json!([]);
    body["keep_alive"] = json!("5m");
    body["format"] = json!("");
    body["think"] = json!(false);
    let a = post(&app, "/api/chat", &body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let job = swarm.job();
    let p = &job.request.params;
    assert_eq!((p.temperature, p.top_p, p.top_k, p.seed), (0.0, 0.5, 7, Some(42)));
    assert_eq!((p.max_tokens, p.stop.clone()), (12, vec!["\n".to_string(), "User:".into()]));
    assert_eq!((p.repeat_penalty, p.presence_penalty, p.frequency_penalty), (1.3, 0.5, 0.25));
    assert_eq!((job.strategy, job.fanout), (Strategy::Vote, 3));
    assert_eq!(job.tags, ["geo", "capitals"], "normalised as the OpenAI API's are");
    assert!(job.debug && job.rag);
    assert_eq!(p.format, None, "an empty format is free text");
    let Prompt::Chat(m) = &job.request.prompt else { panic!("{:?}", job.request.prompt) };
    let roles: Vec<Role> = m.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::System, Role::User, Role::Assistant, Role::User]);
    assert_eq!(m[2].content, "Hello.");
}

#[tokio::test]
async fn ollamas_special_values_and_nova_defaults() {
    for (options, max_tokens, seed, strategy, fanout) in [
        // -1: until the model stops; -2: until the context is full. Both: the node's limit.
        (
            json!({"num_predict": -1, "seed": -1}),
            Limits::default().max_tokens,
            None,
            Strategy::Auto,
            2,
        ),
        (json!({"num_predict": -2}), Limits::default().max_tokens, None, Strategy::Auto, 2),
        // A fanout alone means race, and is clamped, as in the OpenAI API.
        (json!({"fanout": 1000}), 256, None, Strategy::Race, 16),
        (json!({"strategy": "best_of_n", "fanout": 0}), 256, None, Strategy::BestOfN, 1),
        (json!(null), 256, None, Strategy::Auto, 2),
    ] {
        let (app, swarm) = app();
        let mut body = ask("smollm2-135m");
        body["options"] = options.clone();
        body["stream"] = json!(false);
        let a = post(&app, "/api/chat", &body).await;
        assert_eq!(a.status, StatusCode::OK, "{options}: {}", a.text);
        let job = swarm.job();
        assert_eq!(job.request.params.max_tokens, max_tokens, "{options}");
        assert_eq!(job.request.params.seed, seed, "{options}");
        assert_eq!((job.strategy, job.fanout), (strategy, fanout), "{options}");
    }
}

#[tokio::test]
async fn a_strategy_that_picks_at_the_end_streams_its_answer_whole() {
    let (app, _) = app();
    let mut body = ask("smollm2-135m");
    body["options"] = json!({"strategy": "best_of_n", "fanout": 2});
    let lines = post(&app, "/api/chat", &body).await.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        (lines[0]["message"]["content"].clone(), lines[0]["done"].clone()),
        (json!("Paris"), json!(false))
    );
    assert_eq!(lines[1]["done"], true);
}

#[tokio::test]
async fn generate_maps_system_raw_and_streams_responses() {
    let (app, swarm) = app();
    let body =
        json!({"model": "smollm2-135m", "prompt": "Capital of France?", "system": "Be brief."});
    let a = post(&app, "/api/generate", &body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let lines = a.lines();
    let texts: Vec<&str> = lines.iter().filter_map(|l| l["response"].as_str()).collect();
    assert_eq!(texts, ["Par", "is", ""]);
    assert!(lines.iter().all(|l| l.get("message").is_none()), "{lines:?}");
    assert_eq!(lines[2]["done"], true);
    assert_eq!(lines[2]["eval_count"], 2);
    let expected = vec![ChatMessage::system("Be brief."), ChatMessage::user("Capital of France?")];
    assert_eq!(swarm.job().request.prompt, Prompt::Chat(expected));

    let (raw_app, swarm) = super::app();
    let body = json!({"model": "smollm2-135m", "prompt": "The capital of France is", "raw": true, "stream": false, "options": {"num_predict": 5}});
    let v = post(&raw_app, "/api/generate", &body).await.json();
    assert_eq!((v["response"].clone(), v["done"].clone()), (json!("Paris"), json!(true)));
    let job = swarm.job();
    assert_eq!(job.request.prompt, Prompt::Text("The capital of France is".into()));
    assert_eq!(job.request.params.max_tokens, 5);
}

#[tokio::test]
async fn a_request_with_nothing_to_generate_loads_the_model() {
    let (app, swarm) = app();
    for (path, body) in [
        ("/api/chat", json!({"model": "smollm2-135m", "messages": []})),
        ("/api/chat", json!({"model": "nova:latest"})),
        ("/api/generate", json!({"model": "smollm2-135m:latest", "keep_alive": "10m"})),
    ] {
        let a = post(&app, path, &body).await;
        assert_eq!(a.status, StatusCode::OK, "{body}: {}", a.text);
        let v = a.json();
        assert_eq!((v["done"].clone(), v["done_reason"].clone()), (json!(true), json!("load")));
    }
    let a = post(&app, "/api/generate", &json!({"model": "llama3"})).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.error().starts_with("model \"llama3\" not found"), "{}", a.text);
    assert!(swarm.jobs().is_empty(), "nothing was run");
}

#[tokio::test]
async fn a_failure_mid_stream_ends_with_an_error_line() {
    let (app, _) = app();
    let a = post(&app, "/api/chat", &ask("broken")).await;
    assert_eq!(a.status, StatusCode::OK, "the stream had started");
    let lines = a.lines();
    assert_eq!(lines.len(), 3, "{}", a.text);
    assert_eq!(lines[1]["message"]["content"], "is");
    assert_eq!(lines[2], json!({"error": "the worker went away"}));

    let mut whole = ask("broken");
    whole["stream"] = json!(false);
    let a = post(&app, "/api/chat", &whole).await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY);
    assert_eq!(a.error(), "the worker went away");
}

#[tokio::test]
async fn errors_are_ollama_shaped_with_the_right_status() {
    let (app, swarm) = app();
    let a = post(&app, "/api/chat", &ask("llama3:8b")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let e = a.error();
    assert!(e.starts_with("model \"llama3:8b\" not found") && e.contains("smollm2-135m"), "{e}");

    let a = post(&app, "/api/generate", &json!({"model": "busy", "prompt": "hi"})).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.headers["retry-after"], "3");
    assert!(a.error().contains("capacity"), "{}", a.text);
    assert_eq!(swarm.jobs().len(), 2);

    let body = ask("smollm2-135m").to_string();
    for (token, expected) in [(None, "missing bearer token"), (Some("nope"), "wrong bearer token")]
    {
        for path in ["/api/chat", "/api/tags", "/api/pull"] {
            let a = call(&app, "POST", path, token, Some(body.clone())).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(a.headers["www-authenticate"], "Bearer");
            assert_eq!(a.error(), expected, "{path}");
        }
    }
    assert_eq!(swarm.jobs().len(), 2, "nothing unauthenticated ran");

    for path in ["/api/pull", "/api/embed", "/api/create"] {
        let a = call(&app, "POST", path, Some(TOKEN), Some("{}".into())).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
        let e = a.error();
        assert!(e.contains(path) && e.contains("nova model pull"), "{e}");
    }
    let a = get(&app, "/api/chat").await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn format_json_and_a_schema_constrain_the_answer() {
    let (app, swarm) = app();
    let mut body = json!({"model": "smollm2-135m", "stream": false,
        "messages": [{"role": "user", "content": "An age?"}], "format": "json"});
    let a = post(&app, "/api/chat", &body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(swarm.job().request.params.format, Some(ResponseFormat::JsonObject));
    body["format"] = json!({"type": "object", "properties": {"age": {"type": "integer"}}});
    let a = post(&app, "/api/chat", &body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let last = swarm.jobs().pop().expect("a second job");
    let Some(ResponseFormat::JsonSchema { schema }) = last.request.params.format else {
        panic!("no schema")
    };
    assert_eq!(schema, r#"{"properties":{"age":{"type":"integer"}},"type":"object"}"#);
    // A schema too big to turn into a grammar is refused before any worker sees it.
    body["format"] = json!({"type": "object", "description": "x".repeat(20_000)});
    let a = post(&app, "/api/chat", &body).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert!(a.text.contains("the JSON schema is 20034 bytes; at most 16384"), "{}", a.text);
}
