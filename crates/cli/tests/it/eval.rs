//! `nova eval` against a real gateway and two real workers: the results file has the promised
//! shape. Accuracy values are the model's business, not this test's.

use std::{path::Path, time::Duration};

use serde_json::Value;

use crate::{nova, run, stderr, stdout, Proc};

const TOKEN: &str = "eval-token";
const SECRET: &str = "eval-secret-for-tests";

fn worker(join: &str, name: &str) -> Proc {
    crate::swarm_worker(join, SECRET, name, &[])
}

async fn wait_workers(url: &str, n: usize) {
    crate::wait_ready(url, TOKEN, n).await
}

#[tokio::test]
async fn eval_writes_one_result_per_item_and_configuration() {
    let (_gateway, url, join) = crate::spawn_gateway(TOKEN, SECRET, &[]);
    let _a = worker(&join, "eval-a");
    let _b = worker(&join, "eval-b");
    wait_workers(&url, 2).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("results.json");
    let set = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../evals/questions.jsonl");
    let o = run(
        nova(dir.path()).args([
            "eval",
            "--url",
            &url,
            "--token",
            TOKEN,
            "--set",
            set.to_str().expect("utf-8 path"),
            "--limit",
            "6",
            "--configs",
            "greedy,best_of_n:2",
            "--out",
            out.to_str().expect("utf-8 path"),
        ]),
        Duration::from_secs(240),
    );
    assert!(o.status.success(), "stdout: {}\nstderr: {}", stdout(&o), stderr(&o));
    let table = stdout(&o);
    assert!(table.contains("| greedy | 6 |") && table.contains("| best_of_n:2 | 6 |"), "{table}");

    let v: Value = serde_json::from_slice(&std::fs::read(&out).expect("results")).expect("json");
    assert_eq!(v["items"], 6, "{v}");
    assert!(v["machine"]["cores"].as_u64().is_some_and(|c| c > 0), "{v}");
    let configs = v["configs"].as_array().expect("configs");
    assert_eq!(configs.len(), 2, "{v}");
    for (c, (name, strategy)) in
        configs.iter().zip([("greedy", "race"), ("best_of_n:2", "best_of_n")])
    {
        assert_eq!(c["config"], name);
        assert_eq!(c["errors"], 0, "{c}");
        assert_eq!(c["n"], 6, "{c}");
        let acc = c["accuracy"].as_f64().expect("accuracy");
        assert!((0.0..=1.0).contains(&acc), "{c}");
        let ci = c["ci95"].as_array().expect("ci95");
        assert!(ci[0].as_f64() <= Some(acc) && Some(acc) <= ci[1].as_f64(), "{c}");
        assert!(c["tokens_per_item"].as_f64().is_some_and(|t| t > 0.0), "{c}");
        assert!(c["p50_ms"].as_f64().is_some_and(|t| t > 0.0), "{c}");
        let items = c["items"].as_array().expect("items");
        assert_eq!(items.len(), 6, "{c}");
        for it in items {
            assert!(it["correct"].is_boolean(), "{it}");
            assert_eq!(it["strategy"], strategy, "{it}");
            assert!(it["tokens"].as_u64().is_some_and(|t| t > 0), "{it}");
            assert!(it["answer"].as_str().is_some_and(|a| a.chars().count() <= 201), "{it}");
        }
    }
}

/// A stand-in gateway for `--rag`: answers every `/submit` with a canned RAG-shaped response
/// chosen by the prompt, and keeps the bodies it was sent. One request per connection.
fn fake_rag_gateway(
    answers: Vec<(&'static str, Value)>,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use std::io::{BufRead as _, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let bodies = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = std::io::BufReader::new(conn.try_clone().expect("clone"));
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let prompt = body["prompt"].as_str().unwrap_or_default().to_string();
            bodies.lock().expect("lock").push(body);
            let reply = answers
                .iter()
                .find(|(p, _)| prompt.contains(p))
                .map_or(serde_json::json!({"text": "?"}), |(_, r)| r.clone())
                .to_string();
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (url, seen)
}

#[test]
fn eval_rag_asks_for_retrieval_and_records_latency_and_cited_sources() {
    use serde_json::json;
    let retrieval = |ms: f64, answered: u64| {
        json!({"retrieval": {"latency_ms": ms, "asked": 3, "answered": answered, "hits": 6},
            "attempts": [{"tokens": 4}], "strategy": "race"})
    };
    let source = |node: &str, path: &str| json!({"n": 1, "node": node, "path": path, "chunk": 0, "score": 3.2, "text": "passage"});
    let (url, seen) = fake_rag_gateway(vec![
        // Right, with its file cited second.
        (
            "ZX-1",
            json!({"text": "Odile Varga [2]", "trace": retrieval(10.0, 3),
            "sources": [source("a", "shard-a/other.md"), source("b", "shard-b/zx-1.md")]}),
        ),
        // Wrong: a twin was cited instead.
        (
            "ZX-2",
            json!({"text": "Ada Lind", "trace": retrieval(30.0, 2),
            "sources": [source("a", "shard-a/zx-3.md")]}),
        ),
        // A gateway that reports no retrieval at all.
        ("ZX-3", json!({"text": "44", "trace": {"attempts": [{"tokens": 2}], "strategy": "race"}})),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let set = dir.path().join("set.jsonl");
    std::fs::write(
        &set,
        concat!(
            r#"{"id":"docqa-b-001","kind":"product","prompt":"Who maintains ZX-1?","answers":["Odile Varga","Varga"],"source":"shard-b/zx-1.md"}"#,
            "\n",
            r#"{"id":"docqa-c-001","kind":"product","prompt":"Who maintains ZX-2?","answers":["Ines Holt"],"source":"shard-c/zx-2.md"}"#,
            "\n",
            r#"{"id":"docqa-a-001","kind":"product","prompt":"Rack of ZX-3?","answers":["44"],"source":"shard-a/zx-3.md","note":"ignored"}"#,
            "\n",
        ),
    )
    .expect("set");
    let out = dir.path().join("results.json");
    let o = run(
        nova(dir.path()).args([
            "eval",
            "--url",
            &url,
            "--token",
            TOKEN,
            "--set",
            set.to_str().expect("utf-8 path"),
            "--configs",
            "greedy",
            "--rag",
            "--out",
            out.to_str().expect("utf-8 path"),
        ]),
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "stdout: {}\nstderr: {}", stdout(&o), stderr(&o));
    let table = stdout(&o);
    assert!(table.contains("| greedy+rag | 3 | 66.7% [20.8, 93.9] |"), "{table}");
    assert!(
        table.contains("| greedy+rag | 2 | 10.0 | 30.0 | 1/2 = 50.0% [9.5, 90.5] |"),
        "{table}"
    );

    let bodies = seen.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    for b in &bodies {
        assert_eq!(b["rag"], true, "{b}");
        assert_eq!(b["params"]["temperature"], 0, "{b}");
    }

    let v: Value = serde_json::from_slice(&std::fs::read(&out).expect("results")).expect("json");
    assert_eq!(v["settings"]["rag"], true, "{v}");
    let c = &v["configs"][0];
    assert_eq!((c["config"].as_str(), c["rag"].as_bool()), (Some("greedy+rag"), Some(true)), "{c}");
    assert_eq!(
        (c["retrieval_p50_ms"].as_f64(), c["retrieval_p95_ms"].as_f64()),
        (Some(10.0), Some(30.0))
    );
    assert_eq!(
        (c["source_recall"]["n"].as_u64(), c["source_recall"]["cited"].as_u64()),
        (Some(2), Some(1))
    );
    let items = c["items"].as_array().expect("items");
    assert_eq!(items[0]["source_hit"], true, "{}", items[0]);
    assert_eq!(items[0]["source_rank"], 2, "{}", items[0]);
    assert_eq!(items[0]["retrieval"]["sources"][1]["path"], "shard-b/zx-1.md", "{}", items[0]);
    assert!(items[0]["retrieval"]["sources"][0].get("text").is_none(), "{}", items[0]);
    assert_eq!(items[1]["source_hit"], false, "{}", items[1]);
    assert_eq!(items[1]["retrieval"]["answered"], 2, "{}", items[1]);
    assert!(
        items[2].get("source_hit").is_none() && items[2].get("retrieval").is_none(),
        "{}",
        items[2]
    );
}
