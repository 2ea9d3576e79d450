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
