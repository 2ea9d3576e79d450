//! A model pooled across devices (issue 13), end to end: a real gateway holding the first
//! layers of SmolLM2 and real workers holding the rest in `nova rpc-shard` processes, over the
//! swarm's own p2p streams. Each device's `--max-ram` is set below what the model needs.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{spawn_gateway, swarm_view};

const TOKEN: &str = "pool-token";
const SECRET: &str = "pool-secret";
const PROMPT: &str = "Name three rivers in Europe.";

/// A worker whose own model is Gemma 3, so requests for SmolLM2 can only reach the pool.
fn shard_worker(join: &str, name: &str, max_ram: &str) -> crate::Proc {
    let mut args = crate::worker_args(join, SECRET, name);
    let model = args.iter().position(|a| *a == "smollm2-135m").expect("the default model");
    args[model] = "gemma3-270m";
    args.extend_from_slice(&["--max-ram", max_ram]);
    let w = crate::spawn(1, &args);
    w.wait_for("worker ");
    w
}

fn greedy() -> Value {
    json!({"model": "smollm2-135m", "prompt": PROMPT,
           "params": {"temperature": 0, "max_tokens": 24}})
}

/// Waits until the pool's entry in `/v1/swarm` satisfies `pred`.
async fn wait_pool(url: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let view = swarm_view(url, TOKEN).await;
        let pool = &view["pools"][0];
        if pred(pool) {
            return pool.clone();
        }
        assert!(Instant::now() < deadline, "the pool never became {what}: {view}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_pooled_model_is_refused_until_enough_memory_joins_then_answers_as_one_node() {
    // SmolLM2 needs about 77 MiB on the head for its embeddings and compute buffers, and about
    // 2.9 MiB per layer (weights and a 1024-token KV cache): 90 MiB on the head and 70 on each
    // worker (16 of them for compute buffers) fit its 30 layers only with two workers.
    let (_gateway, url, join) = spawn_gateway(
        TOKEN,
        SECRET,
        &["--pool", "smollm2-135m", "--max-ram", "90", "--pool-ctx", "1024"],
    );
    let _a = shard_worker(&join, "shard-a", "70");
    let pool = wait_pool(&url, "waiting with shard-a's offer", |p| {
        p["state"] == "waiting" && p["detail"].as_str().is_some_and(|d| d.contains("shard-a"))
    })
    .await;
    println!("one worker: {pool}");

    // Not enough memory: refused at once, saying what is needed and offered.
    let (status, v) = crate::submit(&url, TOKEN, &greedy()).await;
    assert_eq!(status, 503, "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default().to_owned();
    println!("refused: {message}");
    assert!(message.contains("smollm2-135m") && message.contains("MiB"), "{message}");
    assert!(message.contains("--max-ram"), "{message}");

    // A second worker: the pool plans, loads and answers.
    let _b = shard_worker(&join, "shard-b", "70");
    let pool = wait_pool(&url, "ready", |p| p["state"] == "ready").await;
    println!("two workers: {pool}");
    let holders = pool["holders"].as_array().expect("holders");
    assert_eq!(holders.len(), 3, "{pool}");
    assert_eq!(holders[0]["head"], true, "{pool}");
    let mut next = 0;
    for h in holders {
        assert_eq!(h["first_layer"], next, "contiguous layers: {pool}");
        next += h["layers"].as_u64().expect("layers");
    }
    assert_eq!(next, 30, "every layer held once: {pool}");

    let (status, pooled) = crate::submit(&url, TOKEN, &greedy()).await;
    assert_eq!(status, 200, "{pooled}");
    let text = pooled["text"].as_str().expect("text").to_owned();
    println!("pooled answer: {text:?}");

    // The same question to the whole model on one node, in this process's own llama.cpp.
    let home = crate::home();
    let out = crate::run(
        crate::nova(home.path()).args([
            "ask",
            "--no-pull",
            "-m",
            "smollm2-135m",
            "--temperature",
            "0",
            "--max-tokens",
            "24",
            PROMPT,
        ]),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", crate::stderr(&out));
    let alone = crate::stdout(&out);
    assert_eq!(alone.trim_end(), text.trim_end(), "pooled vs one node");

    // `nova status` says who holds which layers.
    let out = crate::run(
        crate::nova(home.path()).args(["status", "--url", &url, "--token", TOKEN]),
        Duration::from_secs(30),
    );
    let status_text = crate::stdout(&out);
    println!("{status_text}");
    assert!(status_text.contains("POOLED MODEL smollm2-135m (30 layers): ready"), "{status_text}");
    for h in holders {
        let (first, n) = (h["first_layer"].as_u64().unwrap(), h["layers"].as_u64().unwrap());
        let row = format!("layers {first}-{}", first + n - 1);
        assert!(status_text.contains(&row), "{row} missing: {status_text}");
    }
}
