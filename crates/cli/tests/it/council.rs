//! Issue 10's council on the real binary, the real model and three real workers: all three
//! stages in the trace; the chairman killed mid-synthesis and another member finishing; a
//! member killed in stage 1 and the council answering with the rest.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{spawn_gateway, swarm_view, swarm_worker, wait_ready, Proc};

const TOKEN: &str = "council-token";
const SECRET: &str = "council-secret-for-tests";
const NAMES: [&str; 3] = ["m1", "m2", "m3"];

struct Swarm {
    _gateway: Proc,
    url: String,
    workers: Vec<Proc>,
}

async fn swarm() -> Swarm {
    let (gateway, url, join) = spawn_gateway(TOKEN, SECRET, &[]);
    let workers = NAMES.iter().map(|n| swarm_worker(&join, SECRET, n, &[])).collect();
    wait_ready(&url, TOKEN, 3).await;
    Swarm { _gateway: gateway, url, workers }
}

impl Swarm {
    /// Kills the worker whose p2p id is `id`; returns its name.
    async fn kill(&mut self, id: &str) -> String {
        let v = swarm_view(&self.url, TOKEN).await;
        let name = v["workers"]
            .as_array()
            .and_then(|ws| ws.iter().find(|w| w["worker"]["id"] == id))
            .and_then(|w| w["worker"]["name"].as_str())
            .unwrap_or_else(|| panic!("no worker {id}: {v}"))
            .to_string();
        let i = NAMES.iter().position(|n| *n == name).expect("a known name");
        self.workers[i].child.kill().expect("kill");
        name
    }
}

fn council(stream: bool, max_tokens: u32) -> Value {
    json!({
        "prompt": "What is the capital of France? Answer in one sentence.",
        "strategy": "council",
        "fanout": 3,
        "stream": stream,
        "debug": true,
        "params": {"temperature": 0, "max_tokens": max_tokens},
    })
}

fn stage<'a>(trace: &'a Value, name: &str) -> &'a Value {
    trace["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no {name} stage: {trace}"))
}

fn stage_names(trace: &Value) -> Vec<String> {
    trace["stages"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["name"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

async fn post(url: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/submit"))
        .bearer_auth(TOKEN)
        .json(body)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("submit")
}

#[tokio::test]
async fn a_council_of_three_real_workers_answers_ranks_and_synthesises() {
    let s = swarm().await;
    let r = post(&s.url, &council(false, 32)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    let trace = &v["trace"];
    assert_eq!(trace["strategy"], "council", "{v}");
    assert_eq!(stage_names(trace), ["answer", "rank", "synthesize"], "{trace}");
    let answers = stage(trace, "answer")["attempts"].as_array().expect("attempts").len();
    assert_eq!(answers, 3, "{trace}");
    let rank = stage(trace, "rank");
    assert_eq!(rank["attempts"].as_array().map(Vec::len), Some(3), "every member ranked: {rank}");
    assert_eq!(rank["scores"].as_array().map(Vec::len), Some(3), "{rank}");
    let synth = stage(trace, "synthesize");
    assert_eq!(synth["attempts"][0]["role"], "chairman", "{synth}");
    assert_eq!(synth["attempts"][0]["outcome"], "won", "{synth}");
    assert!(!v["text"].as_str().unwrap_or("").trim().is_empty(), "{v}");
    eprintln!("council answer {:?}; rank {}", v["text"], rank["note"]);
}

/// Reads a `/submit` stream's named events, calling `on` with each; stops after `done` or
/// `error`.
async fn read_events(mut r: reqwest::Response, mut on: impl AsyncFnMut(&str, &Value)) {
    let mut buf = String::new();
    while let Some(bytes) = r.chunk().await.expect("body") {
        buf.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut name = "";
            let mut data = Value::Null;
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = n.trim();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data = serde_json::from_str(d.trim()).expect("json data");
                }
            }
            if name.is_empty() {
                continue;
            }
            on(name, &data).await;
            if name == "done" || name == "error" {
                return;
            }
        }
    }
}

#[tokio::test]
async fn a_chairman_killed_mid_synthesis_is_replaced_and_the_answer_completes() {
    let mut s = swarm().await;
    // A long synthesis (it ignores the end of text) so that the kill lands mid-answer.
    let mut body = council(true, 96);
    body["params"]["ignore_eos"] = json!(true);
    let r = post(&s.url, &body).await;
    assert_eq!(r.status(), 200);
    let mut chairman = None::<String>;
    let mut killed = None::<String>;
    let (mut tokens, mut stages, mut done, mut error) = (0, Vec::new(), Value::Null, Value::Null);
    read_events(r, async |name, data| match name {
        "stage" => {
            stages.push(data["name"].as_str().unwrap_or("").to_string());
            // Without tags the fastest answerer chairs.
            if data["name"] == "answer" {
                chairman = data["attempts"].as_array().and_then(|a| {
                    a.iter()
                        .filter(|a| a["outcome"] == "answered")
                        .min_by(|x, y| {
                            let l = |v: &Value| v["latency_ms"].as_f64().unwrap_or(f64::MAX);
                            l(x).total_cmp(&l(y))
                        })
                        .and_then(|a| a["worker"].as_str().map(String::from))
                });
            }
        }
        "token" => {
            tokens += 1;
            if tokens == 8 && killed.is_none() {
                let id = chairman.clone().expect("the answer stage named the chairman");
                killed = Some(s.kill(&id).await);
            }
        }
        "done" => done = data.clone(),
        "error" => error = data.clone(),
        _ => {}
    })
    .await;
    assert!(error.is_null(), "the stream ended with an error: {error}");
    assert!(killed.is_some(), "the chairman was killed after 8 tokens");
    assert_eq!(stages, ["answer", "rank", "synthesize"], "{done}");
    let trace = &done["trace"];
    let h = &trace["handovers"];
    assert_eq!(h.as_array().map(Vec::len), Some(1), "one hand-over: {trace}");
    assert_eq!(h[0]["from"].as_str(), chairman.as_deref(), "{trace}");
    assert_ne!(trace["winner"].as_str(), chairman.as_deref(), "another member finished: {trace}");
    assert!(done["text"].as_str().unwrap_or("").len() > 20, "{done}");
}

#[tokio::test]
async fn a_member_killed_in_stage_one_leaves_the_council_answering_with_the_rest() {
    let mut s = swarm().await;
    let mut body = council(true, 96);
    body["params"]["ignore_eos"] = json!(true);
    let r = post(&s.url, &body).await;
    assert_eq!(r.status(), 200);
    // The stream's 200 comes as stage 1 starts; 96 tokens take seconds on this model, so a
    // kill 1.5 s in lands while the members are generating.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.workers[2].child.kill().expect("kill");
    let (mut done, mut error) = (Value::Null, Value::Null);
    read_events(r, async |name, data| match name {
        "done" => done = data.clone(),
        "error" => error = data.clone(),
        _ => {}
    })
    .await;
    assert!(error.is_null(), "the council failed: {error}");
    let trace = &done["trace"];
    let answer = stage(trace, "answer");
    let answered = answer["attempts"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|a| a["outcome"] == "answered").count());
    assert_eq!(answered, 2, "two members answered: {answer}");
    assert!(answer["note"].as_str().unwrap_or("").contains("dropped"), "{answer}");
    let rank = stage(trace, "rank");
    assert!(rank["note"].as_str().unwrap_or("").starts_with("skipped"), "{rank}");
    assert_eq!(stage(trace, "synthesize")["attempts"][0]["role"], "chairman", "{trace}");
    assert!(!done["text"].as_str().unwrap_or("").is_empty(), "{done}");
}
