//! The openai_http backend against a real OpenAI-compatible server: llama.cpp's own
//! `llama-server`, built from the same llama.cpp tree as `llama-bench`.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nova_engine::{Engine, EngineError, OpenAiHttpConfig, OpenAiHttpEngine};
use nova_proto::{Limits, Prompt, SamplingParams, TaskId, TokenEvent, ValidRequest};

use crate::{chat, collect, greedy, model_path, serial};

/// A running llama-server, killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

async fn start_server() -> Server {
    start_server_with(&[]).await
}

async fn start_server_with(extra: &[&str]) -> Server {
    let bin = std::env::var("NOVA_LLAMA_SERVER").unwrap_or_else(|_| {
        panic!("NOVA_LLAMA_SERVER is not set; scripts/test.sh builds llama-server and sets it")
    });
    let port = free_port();
    let child = Command::new(&bin)
        .args(["-m"])
        .arg(model_path("smollm2-135m"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "-t", "2", "-c", "2048"])
        .args(["--parallel", "1"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let server = Server { child, url: format!("http://127.0.0.1:{port}") };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{}/health", server.url)).send().await {
            if r.status().is_success() {
                return server;
            }
        }
        assert!(Instant::now() < deadline, "llama-server did not become healthy in 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn streams_answers_from_llama_server() -> Result<(), EngineError> {
    let _serial = serial().await;
    let server = start_server().await;
    let engine = OpenAiHttpEngine::new(OpenAiHttpConfig::new(&server.url, "smollm2-135m"))?;

    // Streamed chat: several token events, then Done with usage.
    let mut stream = engine.submit(chat("What is the capital of France?", greedy(48)))?;
    let mut pieces = Vec::new();
    let done = loop {
        match tokio::time::timeout(Duration::from_secs(60), stream.recv()).await.expect("timely") {
            Some(Ok(TokenEvent::Token { text })) => pieces.push(text),
            Some(Ok(done @ TokenEvent::Done { .. })) => break done,
            other => panic!("unexpected {other:?}"),
        }
    };
    let text = pieces.concat();
    assert!(pieces.len() > 1, "expected a stream, got {pieces:?}");
    assert!(text.contains("Paris"), "{text:?}");
    match done {
        TokenEvent::Done { usage, .. } => {
            assert!(usage.completion_tokens > 0 && usage.prompt_tokens > 0)
        }
        _ => unreachable!(),
    }

    // Raw completion goes through /v1/completions.
    let req = ValidRequest::new(
        TaskId(3),
        Prompt::Text("1, 2, 3, 4,".into()),
        greedy(6),
        &Limits::default(),
    )
    .expect("valid");
    let (text, _) = collect(engine.submit(req)?).await?;
    assert!(text.contains('5'), "{text:?}");

    // Dropping the stream frees the slot.
    let long = SamplingParams { ignore_eos: true, ..greedy(500) };
    let mut stream = engine.submit(chat("Write a long story.", long))?;
    let _ = stream.recv().await;
    assert_eq!(engine.health().in_flight, 1);
    drop(stream);
    let t = Instant::now();
    while engine.health().in_flight > 0 {
        assert!(t.elapsed() < Duration::from_secs(2), "slot not freed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_response_format_reaches_llama_server_and_the_answer_parses() -> Result<(), EngineError> {
    let _serial = serial().await;
    let server = start_server().await;
    let engine = OpenAiHttpEngine::new(OpenAiHttpConfig::new(&server.url, "smollm2-135m"))?;
    let schema = r#"{"type":"object","properties":{"city":{"type":"string","maxLength":30}},"required":["city"]}"#;
    let format = Some(nova_proto::ResponseFormat::JsonSchema { schema: schema.into() });
    let params = SamplingParams { format, ..greedy(64) };
    let (text, _) = collect(engine.submit(chat("The capital of France?", params.clone()))?).await?;
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert!(v["city"].is_string(), "{text}");
    // A raw prompt goes to /v1/completions, which takes the schema too.
    let req =
        ValidRequest::new(TaskId(4), Prompt::Text("City: ".into()), params, &Limits::default())
            .expect("valid");
    let (text, _) = collect(engine.submit(req)?).await?;
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert!(v["city"].is_string(), "{text}");
    Ok(())
}

#[tokio::test]
async fn upstream_errors_are_typed() -> Result<(), EngineError> {
    let _serial = serial().await;
    // Nothing listens on this port.
    let url = format!("http://127.0.0.1:{}", free_port());
    let engine = OpenAiHttpEngine::new(OpenAiHttpConfig::new(url, "m"))?;
    let err = collect(engine.submit(chat("hi", greedy(4)))?).await.unwrap_err();
    assert!(matches!(err, EngineError::Unavailable(_)), "{err}");

    // A real server refusing a request: the prompt exceeds its context.
    let server = start_server().await;
    let engine = OpenAiHttpEngine::new(OpenAiHttpConfig::new(&server.url, "smollm2-135m"))?;
    let huge = "lorem ipsum ".repeat(3000);
    let err = collect(engine.submit(chat(&huge, greedy(4)))?).await.unwrap_err();
    assert!(matches!(err, EngineError::Upstream { .. }), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_full_engine_refuses_at_once_and_a_silent_server_times_out() -> Result<(), EngineError> {
    let _serial = serial().await;
    // A listener that never answers: connections succeed, responses never come.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut config =
        OpenAiHttpConfig::new(format!("http://{}", silent.local_addr().expect("addr")), "m");
    config.max_concurrent = 1;
    config.idle_timeout = Duration::from_millis(500);
    let engine = OpenAiHttpEngine::new(config)?;
    let held = engine.submit(chat("a", greedy(4)))?;
    let refused = engine.submit(chat("b", greedy(4)));
    assert!(matches!(refused, Err(EngineError::QueueFull { capacity: 1 })), "{refused:?}");
    let err = collect(held).await.unwrap_err();
    assert!(matches!(err, EngineError::Unavailable(_)), "{err}");
    Ok(())
}

#[tokio::test]
async fn embeddings_come_from_the_upstream_and_match_the_embedded_engine() -> Result<(), EngineError>
{
    let _serial = serial().await;
    let texts = ["The cat sat on the mat.", "Share prices dropped a lot today."];
    let req = || {
        let inputs = texts.iter().map(|t| t.to_string()).collect();
        nova_proto::EmbedRequest::new(TaskId(4), inputs, &Limits::default()).expect("valid")
    };
    let wait = |reply| async {
        tokio::time::timeout(Duration::from_secs(60), nova_engine::embeddings(reply))
            .await
            .expect("timely")
    };
    // Without `--embeddings`, llama-server has none: a clear refusal another worker may not get.
    let plain = start_server().await;
    let engine = OpenAiHttpEngine::new(OpenAiHttpConfig::new(&plain.url, "smollm2-135m"))?;
    let err = wait(engine.embed(req())?).await.unwrap_err();
    let EngineError::Unsupported(msg) = &err else { panic!("{err:?}") };
    assert!(msg.contains("does not serve embeddings") && msg.contains("501"), "{msg}");
    drop(plain);

    let server = start_server_with(&["--embeddings", "--pooling", "mean"]).await;
    let engine = OpenAiHttpEngine::new(OpenAiHttpConfig::new(&server.url, "smollm2-135m"))?;
    let upstream = wait(engine.embed(req())?).await?;
    assert_eq!(upstream.model, "smollm2-135m");
    assert_eq!(upstream.vectors.len(), 2);
    assert!(upstream.prompt_tokens > 0);
    assert_eq!(engine.health().in_flight, 0, "the slot is free once the reply is in");

    // The same model through the embedded llama.cpp: the same mean-pooled vectors, up to the
    // two llama.cpp versions' float rounding.
    let config = nova_engine::LlamaConfig::new(model_path("smollm2-135m"), "smollm2-135m")
        .with_threads(Some(2));
    let local = tokio::task::spawn_blocking(move || nova_engine::LlamaEngine::load(config))
        .await
        .expect("join")?;
    let ours = wait(local.embed(req())?).await?;
    for (i, (a, b)) in ours.vectors.iter().zip(&upstream.vectors).enumerate() {
        assert_eq!(a.len(), b.len());
        let cos: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
        println!("input {i}: cosine between llama-server's vector and ours {cos:.6}");
        assert!(cos > 0.99, "input {i}: {cos}");
    }
    Ok(())
}
