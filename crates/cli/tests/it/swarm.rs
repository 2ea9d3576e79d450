//! A real swarm on 127.0.0.1: `nova serve` plus `nova worker` processes over libp2p, the real
//! model on each, and faults injected by killing processes.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{spawn, Proc};

const TOKEN: &str = "swarm-token";
const SECRET: &str = "swarm-secret-for-tests";

struct Swarm {
    _gateway: Proc,
    url: String,
    join: String,
}

fn gateway() -> Swarm {
    let (gateway, url, join) = crate::spawn_gateway(TOKEN, SECRET, &[]);
    Swarm { _gateway: gateway, url, join }
}

fn worker(s: &Swarm, model: &str, secret: &str) -> Proc {
    worker_at(&s.join, model, secret)
}

fn worker_at(join: &str, model: &str, secret: &str) -> Proc {
    let w = spawn(
        1,
        &[
            "worker",
            "--join",
            join,
            "--secret",
            secret,
            "--no-pull",
            "--model",
            model,
            "--heartbeat-ms",
            "500",
        ],
    );
    w.wait_for("worker ");
    w
}

async fn swarm_view(s: &Swarm) -> Value {
    reqwest::Client::new()
        .get(format!("{}/v1/swarm", s.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("swarm")
        .json()
        .await
        .expect("json")
}

async fn wait_workers(s: &Swarm, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = swarm_view(s).await;
        let ready = v["workers"]
            .as_array()
            .map(|w| w.iter().filter(|w| w["state"] == "ready").count())
            .unwrap_or(0);
        if ready >= n {
            return v;
        }
        assert!(Instant::now() < deadline, "only {ready} of {n} workers ready: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn submit(s: &Swarm, body: Value) -> (u16, Value) {
    crate::submit(&s.url, TOKEN, &body).await
}

#[tokio::test]
async fn two_workers_answer_by_race_and_best_of_n_and_survive_a_kill() {
    let s = gateway();
    let _a = worker(&s, "smollm2-135m", SECRET);
    let mut b = worker(&s, "smollm2-135m", SECRET);
    wait_workers(&s, 2).await;

    let q = "What is the capital of France?";
    for strategy in ["race", "best_of_n"] {
        let (status, v) = submit(&s, json!({"prompt": q, "strategy": strategy, "fanout": 2, "params": {"temperature": 0, "max_tokens": 32}})).await;
        assert_eq!(status, 200, "{strategy}: {v}");
        assert!(v["text"].as_str().unwrap_or("").contains("Paris"), "{strategy}: {v}");
        assert_eq!(v["trace"]["attempts"].as_array().map(Vec::len), Some(2), "{v}");
    }

    // Kill one worker mid-generation: the race still completes on the other.
    let long = json!({"prompt": "Write a long story about a dragon.", "fanout": 2,
        "params": {"temperature": 0, "max_tokens": 200, "ignore_eos": true}});
    let pending = tokio::spawn({
        let url = s.url.clone();
        async move { crate::submit(&url, TOKEN, &long).await }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let _ = b.child.kill();
    let (status, v) = pending.await.expect("join");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["usage"]["completion_tokens"], 200, "{v}");
}

#[tokio::test]
async fn a_worker_with_the_wrong_secret_cannot_join() {
    let s = gateway();
    let _bad = worker(&s, "smollm2-135m", "not-the-secret");
    // The refusal is counted once the handshake fails (garbage after the pnet layer ends in a
    // negotiation error or the 10 s upgrade timeout, whichever comes first).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = reqwest::Client::new()
            .get(format!("{}/metrics", s.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let refused: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("nova_p2p_refused_connections_total "))
            .and_then(|n| n.trim().parse().ok())
            .expect("refused counter");
        if refused >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no refusal counted: {metrics}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let v = swarm_view(&s).await;
    assert_eq!(v["workers"].as_array().map(Vec::len), Some(0), "{v}");
    let (status, v) = submit(&s, json!({"prompt": "hi"})).await;
    assert_eq!(status, 503, "{v}");
}

#[tokio::test]
async fn a_worker_joins_by_host_port_and_a_pinned_wrong_id_is_refused() {
    let s = gateway();
    // `/ip4/127.0.0.1/tcp/<port>/p2p/<id>` -> `127.0.0.1:<port>`.
    let port = s.join.split('/').nth(4).expect("port in the join address");
    let _w = worker_at(&format!("127.0.0.1:{port}"), "smollm2-135m", SECRET);
    let v = wait_workers(&s, 1).await;
    assert_eq!(v["workers"].as_array().map(Vec::len), Some(1), "{v}");
    // The same address pinned to some other node's id: the gateway answers, but it is not the
    // peer the worker was told to trust, so the worker does not join it.
    let other = "12D3KooWSRMBdXgnv8gQTJRaqEdhq5mKYFRWyWhvNJAc9qPPgzmS";
    let _imposter_target =
        worker_at(&format!("/ip4/127.0.0.1/tcp/{port}/p2p/{other}"), "smollm2-135m", SECRET);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let v = swarm_view(&s).await;
    assert_eq!(v["workers"].as_array().map(Vec::len), Some(1), "{v}");
    let (status, v) = submit(&s, json!({"prompt": "hi", "params": {"max_tokens": 4}})).await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test]
async fn requests_for_each_model_reach_only_its_node() {
    let s = gateway();
    let _smol = worker(&s, "smollm2-135m", SECRET);
    let _gemma = worker(&s, "gemma3-270m", SECRET);
    let v = wait_workers(&s, 2).await;
    let id_of = |model: &str| {
        v["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["worker"]["models"][0] == model)
            .map(|w| w["worker"]["id"].clone())
            .expect("worker")
    };
    let (smol, gemma) = (id_of("smollm2-135m"), id_of("gemma3-270m"));
    for _ in 0..2 {
        let (st, v) = submit(&s, json!({"prompt": "The sky is", "model": "gemma3-270m", "fanout": 2, "params": {"max_tokens": 8}})).await;
        assert_eq!((st, &v["trace"]["winner"]), (200, &gemma), "{v}");
        let (st, v) = submit(&s, json!({"prompt": "Hi", "model": "smollm2-135m", "fanout": 2, "params": {"max_tokens": 8}})).await;
        assert_eq!((st, &v["trace"]["winner"]), (200, &smol), "{v}");
    }
    let models: Value = reqwest::Client::new()
        .get(format!("{}/v1/models", s.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("models")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> =
        models["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, ["nova", "gemma3-270m", "smollm2-135m"]);
}

#[tokio::test]
async fn a_killed_worker_is_gone_and_gets_no_more_work() {
    let s = gateway();
    let _a = worker(&s, "smollm2-135m", SECRET);
    let mut b = worker(&s, "smollm2-135m", SECRET);
    wait_workers(&s, 2).await;
    let _ = b.child.kill();
    let _ = b.child.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = swarm_view(&s).await;
        let states: Vec<&str> =
            v["workers"].as_array().unwrap().iter().filter_map(|w| w["state"].as_str()).collect();
        if states.contains(&"gone") {
            assert_eq!(states.iter().filter(|s| **s == "ready").count(), 1, "{v}");
            break;
        }
        assert!(Instant::now() < deadline, "the killed worker never showed as gone: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every request now goes to the live worker, first time, with no failed attempt.
    for _ in 0..3 {
        let (st, v) =
            submit(&s, json!({"prompt": "Hi", "fanout": 2, "params": {"max_tokens": 4}})).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["trace"]["attempts"].as_array().map(Vec::len), Some(1), "{v}");
    }
    // `nova status` shows both, one gone with the time it left (never a time since 1970).
    let home = tempfile::tempdir().expect("tempdir");
    let out = crate::run(
        crate::nova(home.path()).args(["status", "--url", &s.url, "--token", TOKEN]),
        Duration::from_secs(30),
    );
    let text = crate::stdout(&out);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    assert!(text.contains("gone") && text.contains("ready"), "{text}");
    assert!(text.contains(" left "), "{text}");
}

async fn worker_state(s: &Swarm, name: &str) -> Value {
    let v = swarm_view(s).await;
    v["workers"]
        .as_array()
        .and_then(|ws| ws.iter().find(|w| w["worker"]["name"] == name).cloned())
        .unwrap_or(Value::Null)
}

async fn wait_state(s: &Swarm, name: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let w = worker_state(s, name).await;
        if w["state"] == state {
            return w;
        }
        assert!(Instant::now() < deadline, "{name} never became {state}: {w}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Who was asked for each of `n` race requests with fanout 2.
async fn asked(s: &Swarm, n: usize) -> Vec<String> {
    let mut who = Vec::new();
    for _ in 0..n {
        let body = json!({"prompt": "Say hi.", "fanout": 2, "params": {"max_tokens": 4}});
        let (status, v) = submit(s, body).await;
        assert_eq!(status, 200, "{v}");
        for a in v["trace"]["attempts"].as_array().expect("attempts") {
            who.push(a["worker"].as_str().expect("worker").to_string());
        }
    }
    who
}

#[tokio::test]
async fn a_guarded_worker_pauses_on_low_battery_and_heat_then_resumes() {
    // The phone heartbeats every 5 s to prove pauses and resumes travel on their own; the
    // gateway's staleness window must outlast that, or an idle paused phone reads as stale.
    let (gateway, url, join) = crate::spawn_gateway(TOKEN, SECRET, &["--stale-after-ms", "15000"]);
    let s = Swarm { _gateway: gateway, url, join };
    // A fake phone: sysfs and procfs trees the worker's guard reads every 100 ms.
    let dev = crate::FakeDevice::new("Discharging");
    let (bat, zone) = (dev.battery(), dev.zone());
    let mut args = vec![
        "worker",
        "--join",
        &s.join,
        "--secret",
        SECRET,
        "--no-pull",
        "--name",
        "phone",
        "--heartbeat-ms",
        "5000",
    ];
    let guard = dev.guard_flags();
    args.extend(guard.iter().map(String::as_str));
    let phone = spawn(1, &args);
    phone.wait_for("worker ");
    let _box = worker(&s, "smollm2-135m", SECRET);
    wait_workers(&s, 2).await;
    let w = worker_state(&s, "phone").await;
    assert_eq!(w["status"]["battery_pct"], 80.0, "{w}");
    assert_eq!(w["status"]["charging"], false, "{w}");
    assert_eq!(w["status"]["temperature_c"], 36.0, "{w}");
    assert_eq!(w["status"]["free_ram_mb"], 1953, "{w}");
    let phone_id = w["worker"]["id"].as_str().expect("id").to_string();
    assert!(asked(&s, 3).await.contains(&phone_id), "a healthy phone takes work");

    // Flat battery: paused at once (the pause is sent without waiting for the 5 s heartbeat),
    // and no request reaches it, even with fanout 2.
    crate::put(&bat.join("capacity"), "22\n");
    wait_state(&s, "phone", "paused").await;
    assert!(!asked(&s, 4).await.contains(&phone_id), "a paused phone gets no work");
    // Hysteresis: 32 % is above the pause threshold but below the resume one.
    crate::put(&bat.join("capacity"), "32\n");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(worker_state(&s, "phone").await["state"], "paused");
    // Charging resumes it.
    crate::put(&bat.join("status"), "Charging\n");
    wait_state(&s, "phone", "ready").await;
    assert!(asked(&s, 3).await.contains(&phone_id), "a resumed phone takes work again");

    // Heat pauses it too, and it resumes only once cooled below 40 °C.
    crate::put(&zone, "47500\n");
    let w = wait_state(&s, "phone", "paused").await;
    assert_eq!(w["status"]["temperature_c"], 47.5, "{w}");
    crate::put(&zone, "42000\n");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(worker_state(&s, "phone").await["state"], "paused");
    crate::put(&zone, "39000\n");
    wait_state(&s, "phone", "ready").await;
}
