//! Issue 11 on the real binary, the real model and real nodes: a fact that exists only in a
//! file indexed on worker `b` is answered through the gateway with b's file cited; with RAG
//! off, or with b not sharing, it is not; and b killed mid-query leaves the answer to the rest
//! within the retrieval deadline.

use std::{path::Path, time::Duration};

use serde_json::{json, Value};

use crate::{home, nova, run, spawn_cmd, spawn_gateway, stderr, wait_ready, Proc};

const TOKEN: &str = "knowledge-token";
const SECRET: &str = "knowledge-secret-for-tests";
/// Worded with the document's own "maintainer": the index does not stem, so "maintains" would
/// not match "maintained", and with one passage per question the section that only names the
/// controller would be retrieved instead (seen when the default became one passage).
const QUESTION: &str =
    "Who is the maintainer of the ZX-4471 controller? Answer with just the name.";

/// Writes `files` under `dir`.
fn write_docs(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
}

/// b's documents: the only place the ZX-4471's maintainer is written down.
pub(crate) fn b_docs(dir: &Path) {
    write_docs(
        dir,
        &[
            (
                "wiki/controllers/zx-4471.md",
                "# ZX-4471 controller\n\nThe ZX-4471 controller drives the greenhouse pumps.\n\n\
                 ## Maintainer\n\nThe ZX-4471 controller is maintained by Odile Varga.\n",
            ),
            ("recipes/pancakes.txt", "Pancakes: two eggs, 250 g flour, half a litre of milk.\n"),
        ],
    );
}

/// c's documents: look-alikes that do not answer the question.
fn c_docs(dir: &Path) {
    write_docs(
        dir,
        &[
            (
                "notes/qr-1180.md",
                "# QR-1180 controller\n\nThe QR-1180 controller is maintained by Tomas Brandt.\n",
            ),
            (
                "notes/garden.html",
                "<html><body><h1>Garden</h1><p>Water the tomatoes daily.</p></body></html>",
            ),
        ],
    );
}

/// A worker `name` whose data dir indexes the documents `docs` writes (`nova rag add`, in
/// the directory `<name>-docs`), with `--share-knowledge` when `share`.
pub(crate) fn knowing_worker(
    join: &str,
    secret: &str,
    name: &str,
    docs: fn(&Path),
    share: bool,
) -> Proc {
    let home = home();
    let dir = home.path().join(format!("{name}-docs"));
    docs(&dir);
    let added = run(nova(home.path()).args(["rag", "add"]).arg(&dir), Duration::from_secs(60));
    assert!(added.status.success(), "rag add: {}", stderr(&added));
    let mut cmd = nova(home.path());
    cmd.args(crate::worker_args(join, secret, name)).env("NOVA_THREADS", "1");
    if share {
        cmd.arg("--share-knowledge");
    }
    let w = spawn_cmd(cmd, home);
    w.wait_for("worker ");
    w
}

async fn submit(url: &str, rag: bool) -> Value {
    let body = json!({
        "prompt": QUESTION,
        "strategy": "race",
        "fanout": 1,
        "rag": rag,
        "params": {"temperature": 0, "max_tokens": 24},
    });
    let (status, v) = crate::submit(url, TOKEN, &body).await;
    assert_eq!(status, 200, "{v}");
    v
}

/// The line of a node's text log (under `<home>/logs/`) that contains `needle`, waiting up to
/// 10 s for the log writer.
async fn wait_logged(home: &Path, needle: &str) -> String {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let lines: Vec<String> = std::fs::read_dir(home.join("logs"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .flat_map(|t| t.lines().map(str::to_string).collect::<Vec<_>>())
            .collect();
        if let Some(l) = lines.into_iter().find(|l| l.contains(needle)) {
            return l;
        }
        assert!(std::time::Instant::now() < until, "no log line with {needle:?} in {home:?}/logs");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn cited(v: &Value) -> Vec<(String, String)> {
    v["sources"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| {
                    (
                        s["node"].as_str().unwrap_or("").into(),
                        s["path"].as_str().unwrap_or("").into(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fact_only_b_holds_is_answered_with_b_cited_and_not_without_rag() {
    let (_gateway, url, join) = spawn_gateway(TOKEN, SECRET, &[]);
    let b = knowing_worker(&join, SECRET, "b", b_docs, true);
    let _c = knowing_worker(&join, SECRET, "c", c_docs, true);
    wait_ready(&url, TOKEN, 2).await;

    let v = submit(&url, true).await;
    let text = v["text"].as_str().expect("text");
    assert!(text.contains("Varga"), "grounded answer: {v}");
    let sources = cited(&v);
    assert_eq!(
        sources.first(),
        Some(&("b".to_string(), "b-docs/wiki/controllers/zx-4471.md".to_string())),
        "{v}"
    );
    let retrieval = &v["trace"]["retrieval"];
    assert_eq!(
        (retrieval["asked"].as_u64(), retrieval["answered"].as_u64()),
        (Some(2), Some(2)),
        "{v}"
    );
    // What left b is in b's own log.
    let logged = wait_logged(b.home(), "zx-4471.md#").await;
    assert!(logged.contains("passages sent to the gateway"), "{logged}");

    let v = submit(&url, false).await;
    assert!(!v["text"].as_str().expect("text").contains("Varga"), "without RAG: {v}");
    assert!(v.get("sources").is_none_or(|s| s.as_array().is_some_and(|a| a.is_empty())), "{v}");
    assert!(v["trace"].get("retrieval").is_none(), "nothing retrieved without rag: {v}");

    // The OpenAI endpoint takes the same switch in `nova` and cites in `nova.sources`.
    let chat = json!({
        "messages": [{"role": "user", "content": QUESTION}],
        "temperature": 0, "max_tokens": 24, "nova": {"rag": true, "strategy": "race", "fanout": 1},
    });
    let v: Value = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(TOKEN)
        .json(&chat)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("chat")
        .json()
        .await
        .expect("json");
    assert_eq!(v["nova"]["sources"][0]["node"], "b", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_b_not_sharing_the_fact_is_not_found() {
    let (_gateway, url, join) = spawn_gateway(TOKEN, SECRET, &[]);
    // b has the file indexed but was not started with --share-knowledge.
    let _b = knowing_worker(&join, SECRET, "b", b_docs, false);
    let _c = knowing_worker(&join, SECRET, "c", c_docs, true);
    wait_ready(&url, TOKEN, 2).await;
    let v = submit(&url, true).await;
    assert!(!v["text"].as_str().expect("text").contains("Varga"), "{v}");
    assert!(cited(&v).iter().all(|(node, _)| node == "c"), "only c shares: {v}");
    assert_eq!(v["trace"]["retrieval"]["asked"], 1, "b is not even asked: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_killed_mid_query_leaves_the_answer_to_the_rest_within_the_deadline() {
    let (_gateway, url, join) = spawn_gateway(TOKEN, SECRET, &["--retrieval-timeout", "1500ms"]);
    let mut b = knowing_worker(&join, SECRET, "b", b_docs, true);
    let _c = knowing_worker(&join, SECRET, "c", c_docs, true);
    wait_ready(&url, TOKEN, 2).await;

    // b hangs (as a device that froze), long enough to be stale for routing, so only its
    // retrieval is in flight when it is killed.
    let pid = b.child.id() as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGSTOP)
        .expect("SIGSTOP");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = std::time::Instant::now();
    let ask = tokio::spawn({
        let url = url.clone();
        async move { submit(&url, true).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.child.kill().expect("SIGKILL b");
    let v = ask.await.expect("the request task");
    let retrieval = &v["trace"]["retrieval"];
    assert_eq!(
        (retrieval["asked"].as_u64(), retrieval["answered"].as_u64()),
        (Some(2), Some(1)),
        "{v}"
    );
    assert!(retrieval["skipped"][0].as_str().is_some_and(|s| s.starts_with("b:")), "{v}");
    assert!(retrieval["latency_ms"].as_f64().is_some_and(|ms| ms <= 1700.0), "{v}");
    assert!(cited(&v).iter().all(|(node, _)| node == "c"), "{v}");
    assert!(v["text"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn ask_with_rag_answers_from_the_devices_own_index_and_prints_its_sources() {
    let home = home();
    let dir = home.path().join("b-docs");
    b_docs(&dir);
    let added = run(nova(home.path()).args(["rag", "add"]).arg(&dir), Duration::from_secs(60));
    assert!(added.status.success(), "rag add: {}", stderr(&added));
    let ask = |rag: bool| {
        let mut cmd = nova(home.path());
        cmd.args(["ask", "--no-pull", "--model", "smollm2-135m", "-t", "0", "--max-tokens", "24"]);
        if rag {
            cmd.arg("--rag");
        }
        run(cmd.arg(QUESTION), Duration::from_secs(120))
    };
    let out = ask(true);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = crate::stdout(&out);
    assert!(text.contains("Varga"), "{text}");
    assert!(text.contains("Sources:\n[1] b-docs/wiki/controllers/zx-4471.md"), "{text}");
    let out = ask(false);
    let text = crate::stdout(&out);
    assert!(!text.contains("Varga") && !text.contains("Sources:"), "{text}");
}
