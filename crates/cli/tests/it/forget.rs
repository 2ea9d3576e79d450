//! Departed workers are forgotten after `--forget-after`, and only connected workers count
//! against `--max-workers` (issue 9, defect 4: after 1,024 distinct peer ids every new worker
//! was refused until a restart, and /v1/swarm listed departed workers forever).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{spawn, Proc};

const TOKEN: &str = "forget-token";
const SECRET: &str = "forget-secret-for-tests";

fn worker(join: &str, name: &str) -> Proc {
    let w = spawn(
        1,
        &[
            "worker",
            "--join",
            join,
            "--secret",
            SECRET,
            "--no-pull",
            "--name",
            name,
            "--heartbeat-ms",
            "300",
        ],
    );
    w.wait_for("worker ");
    w
}

async fn view(url: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{url}/v1/swarm"))
        .bearer_auth(TOKEN)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("swarm")
        .json()
        .await
        .expect("json")
}

fn state<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v["workers"].as_array()?.iter().find(|w| w["worker"]["name"] == name)?["state"].as_str()
}

async fn wait(url: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = view(url).await;
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "never {what}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn departed_workers_are_forgotten_and_free_their_place() {
    let (_gateway, url, join) =
        crate::spawn_gateway(TOKEN, SECRET, &["--forget-after", "2s", "--max-workers", "1"]);
    let mut a = worker(&join, "wa");
    wait(&url, "wa ready", |v| state(v, "wa") == Some("ready")).await;
    let _ = a.child.kill();
    let _ = a.child.wait();
    let v = wait(&url, "wa gone", |v| state(v, "wa") == Some("gone")).await;
    let gone =
        v["workers"].as_array().and_then(|ws| ws.iter().find(|w| w["worker"]["name"] == "wa"));
    let gone = gone.expect("wa listed");
    assert!(gone["left_at_ms"].as_u64().is_some_and(|t| t > 0), "{gone}");
    assert!(gone["worker"]["last_seen_ms"].as_u64().is_some_and(|t| t > 0), "{gone}");

    // The limit is one connected worker: wa left, so wb takes its place at once.
    let _b = worker(&join, "wb");
    wait(&url, "wb ready", |v| state(v, "wb") == Some("ready")).await;
    // And wa is forgotten.
    wait(&url, "wa forgotten", |v| state(v, "wa").is_none()).await;

    // A second connected worker is over the limit: it never shows up while wb is connected.
    let _c = worker(&join, "wc");
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let v = view(&url).await;
        assert_eq!(state(&v, "wc"), None, "wc is over --max-workers 1: {v}");
        assert_eq!(state(&v, "wb"), Some("ready"), "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
