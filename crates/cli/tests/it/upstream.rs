//! A gateway and a worker in front of an OpenAI-compatible server (llama.cpp's own
//! `llama-server`), each with an empty data dir: no model is pulled or loaded locally (issue 9,
//! defect 5: `serve` and `worker` ignored `--backend`, `--url` and `--api-key`).
//!
//! `llama-server` comes from `NOVA_LLAMA_SERVER`, which `scripts/test.sh` sets after
//! `scripts/build_llama_tools.sh` built it; without it the test fails and says so, as the
//! engine's openai_http tests do.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use crate::{shared_home, spawn_empty};

const TOKEN: &str = "upstream-token";
const SECRET: &str = "upstream-secret-for-tests";

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

async fn llama_server() -> Server {
    let bin = std::env::var("NOVA_LLAMA_SERVER").unwrap_or_else(|_| {
        panic!("NOVA_LLAMA_SERVER is not set; scripts/test.sh builds llama-server and sets it")
    });
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let model = shared_home().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let child = Command::new(&bin)
        .arg("-m")
        .arg(&model)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "-t", "1", "-c", "2048"])
        .args(["--parallel", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let server = Server { child, url: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(format!("{}/health", server.url)).await {
            if r.status().is_success() {
                return server;
            }
        }
        assert!(Instant::now() < deadline, "llama-server did not become healthy in 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_gateway_and_a_worker_front_llama_server_with_empty_data_dirs() {
    let server = llama_server().await;
    let upstream =
        ["--backend", "openai-http", "--url", server.url.as_str(), "--model", "smollm2-135m"];
    let mut args = vec![
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--p2p-listen",
        "/ip4/127.0.0.1/tcp/0",
        "--token",
        TOKEN,
        "--secret",
        SECRET,
        "--stale-after-ms",
        "1500",
    ];
    args.extend(upstream);
    let gateway = spawn_empty(&args);
    let url = gateway.wait_for("nova gateway listening on ");
    let join = gateway.wait_for("p2p listening on ");
    let mut args = vec![
        "worker",
        "--join",
        join.as_str(),
        "--secret",
        SECRET,
        "--name",
        "fronting",
        "--heartbeat-ms",
        "300",
    ];
    // The worker is given the URL the way OpenAI clients take it, and without a scheme, as
    // people paste it: the same server.
    let pasted = format!("{}/v1", server.url.trim_start_matches("http://"));
    args.extend(["--backend", "openai-http", "--url", &pasted, "--model", "smollm2-135m"]);
    let worker = spawn_empty(&args);
    let said = worker.wait_for("worker ");
    assert!(said.contains("(smollm2-135m, "), "{said}");

    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v: Value = client
            .get(format!("{url}/v1/swarm"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("swarm")
            .json()
            .await
            .expect("json");
        let ready = v["workers"]
            .as_array()
            .map_or(0, |w| w.iter().filter(|w| w["state"] == "ready").count());
        if ready == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the local and the remote worker never both ready: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let body = json!({"prompt": "What is the capital of France?", "strategy": "race", "fanout": 2,
        "params": {"temperature": 0, "max_tokens": 32}});
    let (status, v) = crate::submit(&url, TOKEN, &body).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["text"].as_str().unwrap_or_default().contains("Paris"), "{v}");
    let attempts = v["trace"]["attempts"].as_array().map(Vec::len);
    assert_eq!(attempts, Some(2), "both the gateway's and the worker's upstream were asked: {v}");
}
