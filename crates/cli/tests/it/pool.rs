//! A model pooled across devices (issue 13), end to end: a real gateway holding the first
//! layers of SmolLM2 and real workers holding the rest in `nova rpc-shard` processes, over the
//! swarm's own p2p streams. Each device's `--max-ram` is set below what the model needs.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{spawn_gateway, swarm_view};

const TOKEN: &str = "pool-token";
const SECRET: &str = "pool-secret";
const PROMPT: &str = "Name three rivers in Europe.";

/// The flags of a worker whose own model is Gemma 3, offering `max_ram` MiB.
fn shard_worker_args<'a>(join: &'a str, name: &'a str, max_ram: &'a str) -> Vec<&'a str> {
    let mut args = crate::worker_args(join, SECRET, name);
    let model = args.iter().position(|a| *a == "smollm2-135m").expect("the default model");
    args[model] = "gemma3-270m";
    args.extend_from_slice(&["--max-ram", max_ram]);
    args
}

/// A worker whose own model is Gemma 3, so requests for SmolLM2 can only reach the pool.
fn shard_worker(join: &str, name: &str, max_ram: &str) -> crate::Proc {
    let w = crate::spawn(1, &shard_worker_args(join, name, max_ram));
    w.wait_for("worker ");
    w
}

/// A gateway pooling SmolLM2 with 90 MiB of its own, with `extra` flags. SmolLM2 needs about
/// 77 MiB on the head for its embeddings and compute buffers, and about 2.9 MiB per layer
/// (weights and a 1024-token KV cache): 90 MiB on the head and 70 on each worker (16 of them
/// for compute buffers) fit its 30 layers only with two workers.
fn pool_gateway(extra: &[&str]) -> (crate::Proc, String, String) {
    let mut args = vec!["--pool", "smollm2-135m", "--max-ram", "90", "--pool-ctx", "1024"];
    args.extend_from_slice(extra);
    spawn_gateway(TOKEN, SECRET, &args)
}

fn greedy() -> Value {
    json!({"model": "smollm2-135m", "prompt": PROMPT,
           "params": {"temperature": 0, "max_tokens": 24}})
}

/// The greedy answer of the whole `model` on one node (`nova ask`, no swarm).
fn one_node(model: &str, prompt: &str, tokens: u32) -> String {
    let home = crate::home();
    let tokens = tokens.to_string();
    let out = crate::run(
        crate::nova(home.path()).args([
            "ask",
            "--no-pull",
            "-m",
            model,
            "--temperature",
            "0",
            "--max-tokens",
            &tokens,
            prompt,
        ]),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", crate::stderr(&out));
    crate::stdout(&out)
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
    let (_gateway, url, join) = pool_gateway(&[]);
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

    // The same question to the whole model on one node.
    let alone = one_node("smollm2-135m", PROMPT, 24);
    assert_eq!(alone.trim_end(), text.trim_end(), "pooled vs one node");

    // `nova status` says who holds which layers.
    let home = crate::home();
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

    // And the dashboard draws it, in a real browser (tests/web/pool.mjs).
    let chromium = std::env::var_os("NOVA_CHROMIUM")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/chromium".into());
    let missing = crate::web::missing_tools(&chromium);
    if !missing.is_empty() {
        let what = missing.join(", ");
        assert!(std::env::var_os("CI").is_none(), "CI is set and the browser check lacks: {what}");
        eprintln!("\n!!!!! SKIPPED the dashboard's pool view: missing {what} !!!!!\n");
        return;
    }
    let root = crate::web::root();
    let out = crate::run(
        std::process::Command::new("node")
            .arg(root.join("tests/web/pool.mjs"))
            .env("NOVA_URL", &url)
            .env("NOVA_TOKEN", TOKEN)
            .env("NOVA_CHROMIUM", &chromium)
            .env("NOVA_SHOTS", root.join("target/web-screenshots")),
        Duration::from_secs(120),
    );
    println!("{}", crate::stdout(&out));
    assert!(out.status.success(), "{}{}", crate::stdout(&out), crate::stderr(&out));
}

/// Socket inodes a process has open.
fn socket_inodes(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return vec![] };
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned)
        })
        .collect()
}

/// Inodes of every listening socket on this machine: TCP (state 0A) and unix (flag
/// __SO_ACCEPTCON, 00010000).
fn listening_inodes() -> Vec<String> {
    let mut out = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(f).unwrap_or_default().lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.get(3) == Some(&"0A") {
                out.extend(cols.get(9).map(|s| s.to_string()));
            }
        }
    }
    for line in std::fs::read_to_string("/proc/net/unix").unwrap_or_default().lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.get(3) == Some(&"00010000") {
            out.extend(cols.get(6).map(|s| s.to_string()));
        }
    }
    out
}

/// The `nova rpc-shard` processes `worker` started.
fn shard_processes(worker: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            // Field 4 of stat, after the parenthesised name, is the parent pid.
            let parent = stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1));
            parent == Some(&worker.to_string()) && cmd.contains("rpc-shard")
        })
        .collect()
}

#[tokio::test]
async fn a_pooled_shard_listens_nowhere_and_its_loss_ends_the_answer_then_the_pool_replans() {
    let (_gateway, url, join) = pool_gateway(&["--shard-timeout", "10s"]);
    // Three workers where two suffice: the planner takes the fewest, the third is spare.
    let a = shard_worker(&join, "shard-a", "70");
    let b = shard_worker(&join, "shard-b", "70");
    let c = shard_worker(&join, "shard-c", "70");
    let pool = wait_pool(&url, "ready", |p| p["state"] == "ready").await;
    let holders: Vec<String> = pool["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(holders.len(), 3, "the head and the fewest shards: {pool}");
    let (status, first) = crate::submit(&url, TOKEN, &greedy()).await;
    assert_eq!(status, 200, "{first}");

    // The ggml-rpc server of each session is a process of its own that no other local process
    // can reach: it has no listening socket at all (its only socket is the socketpair end the
    // worker gave it), so there is nothing to connect to.
    let listening = listening_inodes();
    let mut servers = 0;
    for w in [&a, &b, &c] {
        for pid in shard_processes(w.child.id()) {
            servers += 1;
            let sockets = socket_inodes(pid);
            assert!(!sockets.is_empty(), "rpc-shard {pid} has its session socket");
            for s in &sockets {
                assert!(!listening.contains(s), "rpc-shard {pid} listens on socket {s}");
            }
        }
    }
    assert!(servers >= 2, "each shard holding layers runs a server process ({servers})");

    // A long answer; one of the pool's shards dies under it.
    let victim = if holders.contains(&"shard-a".to_owned()) { a } else { b };
    let long = json!({"model": "smollm2-135m", "prompt": "Write a long story.",
                      "params": {"temperature": 0, "max_tokens": 1500, "ignore_eos": true}});
    let asked = tokio::spawn({
        let url = url.clone();
        async move { crate::submit(&url, TOKEN, &long).await }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = Instant::now();
    drop(victim); // SIGKILLs the worker; its rpc-shard child loses its socket and exits
    let (status, v) = tokio::time::timeout(Duration::from_secs(30), asked)
        .await
        .expect("the answer ends within 30 s of the loss")
        .expect("join");
    println!("after the loss ({:?}): {status} {v}", started.elapsed());
    assert_ne!(status, 200, "an answer with a lost shard cannot be complete: {v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("lost") || message.contains("shard"), "{v}");

    // The pool is planned again over the spare worker and answers as before.
    let pool = wait_pool(&url, "ready again", |p| {
        p["state"] == "ready"
            && p["holders"].as_array().is_some_and(|h| h.iter().any(|x| x["name"] == "shard-c"))
    })
    .await;
    println!("re-planned: {pool}");
    let (status, again) = crate::submit(&url, TOKEN, &greedy()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["text"], first["text"], "the re-planned pool answers as before");
}

#[tokio::test]
async fn a_shard_paused_by_its_guard_leaves_the_pool_which_replans_without_it() {
    let (_gateway, url, join) = pool_gateway(&["--stale-after-ms", "15000"]);
    // A fake phone whose guard reads its sysfs and procfs trees every 100 ms. It offers the
    // most memory, so the planner takes it first.
    let dev = crate::FakeDevice::new("Discharging");
    let mut args = shard_worker_args(&join, "phone", "80");
    let guard = dev.guard_flags();
    args.extend(guard.iter().map(String::as_str));
    let phone = crate::spawn(1, &args);
    phone.wait_for("worker ");
    let _b = shard_worker(&join, "shard-b", "70");
    let _c = shard_worker(&join, "shard-c", "70");
    let holds = |p: &Value, name: &str| {
        p["holders"].as_array().is_some_and(|h| h.iter().any(|x| x["name"] == name))
    };
    let pool =
        wait_pool(&url, "ready with the phone", |p| p["state"] == "ready" && holds(p, "phone"))
            .await;
    println!("with the phone: {pool}");
    let (status, before) = crate::submit(&url, TOKEN, &greedy()).await;
    assert_eq!(status, 200, "{before}");

    // The battery drops: the guard pauses the phone, it offers nothing, and the pool is planned
    // again over the other two.
    crate::put(&dev.battery().join("capacity"), "10\n");
    let pool = wait_pool(&url, "ready without the phone", |p| {
        p["state"] == "ready" && !holds(p, "phone") && holds(p, "shard-b") && holds(p, "shard-c")
    })
    .await;
    println!("without the phone: {pool}");
    let (status, after) = crate::submit(&url, TOKEN, &greedy()).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["text"], before["text"]);
}

/// Names of the devices holding the pool's layers, head first.
fn holder_names(pool: &Value) -> Vec<String> {
    let holders = pool["holders"].as_array().expect("holders");
    holders.iter().map(|h| h["name"].as_str().unwrap_or_default().to_owned()).collect()
}

#[tokio::test]
async fn gemma_pooled_over_three_then_two_workers_answers_token_for_token_as_one_node() {
    // Gemma 3 270M: the head needs about 219 MiB for the embeddings, output and its buffers, so
    // 230 MiB leave it 2 of the 18 layers; 50 MiB hold about 7 layers on a worker. Its Q4_K
    // weights are repacked for the CPU on the head and on each shard alike.
    const PROMPT: &str = "Name three rivers in Europe and say where each one flows.";
    let ask = json!({"model": "gemma3-270m", "prompt": PROMPT,
                     "params": {"temperature": 0, "max_tokens": 96}});
    let (_gateway, url, join) = spawn_gateway(
        TOKEN,
        SECRET,
        &["--pool", "gemma3-270m", "--max-ram", "230", "--pool-ctx", "1024"],
    );
    // Workers whose own model is SmolLM2: Gemma is only reachable through the pool.
    let worker = |name: &str, max_ram: &str| {
        let mut args = crate::worker_args(&join, SECRET, name);
        args.extend_from_slice(&["--max-ram", max_ram]);
        let w = crate::spawn(1, &args);
        w.wait_for("worker ");
        w
    };
    let _a = worker("shard-a", "50");
    let _b = worker("shard-b", "50");
    let c = worker("shard-c", "50");
    let pool = wait_pool(&url, "ready on three shards", |p| p["state"] == "ready").await;
    println!("three workers: {pool}");
    assert_eq!(holder_names(&pool).len(), 4, "the head and three shards: {pool}");
    let want = one_node("gemma3-270m", PROMPT, 96);
    println!("one node: {want:?}");
    let (status, three) = crate::submit(&url, TOKEN, &ask).await;
    assert_eq!(status, 200, "{three}");
    assert_eq!(three["text"].as_str().unwrap_or_default().trim_end(), want.trim_end(), "3 shards");

    // A device with more memory joins and one of the three goes: the pool is planned again on
    // the fewest shards, the new one first.
    let _d = worker("shard-d", "80");
    drop(c);
    let pool = wait_pool(&url, "ready on two shards", |p| {
        p["state"] == "ready" && holder_names(p).len() == 3
    })
    .await;
    println!("re-planned: {pool}");
    assert!(holder_names(&pool).contains(&"shard-d".to_owned()), "{pool}");
    let (status, two) = crate::submit(&url, TOKEN, &ask).await;
    assert_eq!(status, 200, "{two}");
    assert_eq!(two["text"].as_str().unwrap_or_default().trim_end(), want.trim_end(), "2 shards");
}

#[tokio::test]
async fn smollm2_pooled_over_three_worker_processes_answers_token_for_token_as_one_node() {
    // 45 MiB hold about 10 of SmolLM2's layers on a worker (16 MiB for compute buffers); the
    // head's 90 MiB leave it 4: two workers are short, three are needed.
    let (_gateway, url, join) = pool_gateway(&[]);
    let _a = shard_worker(&join, "shard-a", "45");
    let _b = shard_worker(&join, "shard-b", "45");
    let _c = shard_worker(&join, "shard-c", "45");
    let pool = wait_pool(&url, "ready on three shards", |p| p["state"] == "ready").await;
    println!("three workers: {pool}");
    assert_eq!(holder_names(&pool).len(), 4, "the head and three shards: {pool}");
    // The head is named as the gateway is in the swarm view (hostname and peer id's end).
    let head = &holder_names(&pool)[0];
    assert!(head != "smollm2-135m" && head.contains('-'), "the head is called {head}");
    let (status, pooled) = crate::submit(&url, TOKEN, &greedy()).await;
    assert_eq!(status, 200, "{pooled}");
    let alone = one_node("smollm2-135m", PROMPT, 24);
    assert_eq!(pooled["text"].as_str().unwrap_or_default().trim_end(), alone.trim_end());
}
