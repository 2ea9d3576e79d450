//! Several requests at once on one device (issue 12), end to end: a real gateway, one real
//! worker generating 4 sequences at once on the real model, over real p2p and HTTP.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{spawn_gateway, swarm_view, swarm_worker, wait_ready};

const TOKEN: &str = "batch-token";
const SECRET: &str = "batch-secret";

async fn submit(url: &str, body: Value) -> (u16, Value) {
    crate::submit(url, TOKEN, &body).await
}

fn greedy(prompt: &str) -> Value {
    json!({"prompt": prompt, "params": {"temperature": 0, "max_tokens": 24}})
}

#[tokio::test]
async fn one_worker_with_four_sequences_serves_four_at_once_and_says_so() {
    let (_gateway, url, join) = spawn_gateway(TOKEN, SECRET, &[]);
    let _quad = swarm_worker(&join, SECRET, "quad", &["--parallel", "4", "--ctx", "1024"]);
    wait_ready(&url, TOKEN, 1).await;

    // Four different greedy questions at once: each gets exactly its answer alone.
    let prompts = ["Name a color.", "Name a fruit.", "Name a planet.", "Name an animal."];
    let together = futures_util::future::join_all(prompts.map(|p| submit(&url, greedy(p)))).await;
    for (p, (status, v)) in prompts.iter().zip(&together) {
        assert_eq!(*status, 200, "{v}");
        let (status, alone) = submit(&url, greedy(p)).await;
        assert_eq!(status, 200, "{alone}");
        assert_eq!(v["text"], alone["text"], "{p}: together {v} alone {alone}");
    }

    // Best-of-4 on a swarm of one device: 4 samples, all from it.
    let (status, v) = submit(
        &url,
        json!({"prompt": "Write one sentence about the sea.", "strategy": "best_of_n", "fanout": 4,
               "params": {"temperature": 0.8, "max_tokens": 24}}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let attempts = v["trace"]["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 4, "{v}");
    assert!(attempts.iter().all(|a| a["worker"] == attempts[0]["worker"]), "{v}");

    // Its heartbeat carries the sequences, the KV cache and the speeds measured under load.
    let deadline = Instant::now() + Duration::from_secs(10);
    let slots = loop {
        let view = swarm_view(&url, TOKEN).await;
        let slots = view["workers"][0]["status"]["slots"].clone();
        let measured = slots["stream_speeds"]
            .as_array()
            .is_some_and(|s| s.iter().skip(1).any(|x| x.as_f64().unwrap_or(0.0) > 0.0));
        if measured {
            break slots;
        }
        assert!(Instant::now() < deadline, "no speed under load was reported: {view}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(slots["total"], 4, "{slots}");
    assert!(slots["kv_cache_mib"].as_u64().is_some_and(|m| m > 0), "{slots}");

    // `nova status` shows them.
    let home = tempfile::tempdir().expect("tempdir");
    let out = crate::run(
        crate::nova(home.path()).args(["status", "--url", &url, "--token", TOKEN]),
        Duration::from_secs(30),
    );
    let text = crate::stdout(&out);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    assert!(text.contains("SLOTS") && text.contains("KV MiB"), "{text}");
    let row = text.lines().find(|l| l.starts_with("quad")).expect("quad's row");
    assert!(row.contains("/4"), "{text}");
}
