//! Careless-user cases of `nova serve`: a p2p port already taken, who may read the data dir,
//! and the README's `curl -d` commands pasted as they are.

use std::{os::unix::fs::PermissionsExt as _, path::Path, time::Duration};

use serde_json::Value;

use crate::{nova, run, spawn, spawn_cmd, stderr};

const TOKEN: &str = "edge-token";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A second gateway on the first one's p2p port must refuse to start rather than share it
/// (the kernel would split workers between two swarms with different secrets).
#[test]
fn a_second_serve_on_a_taken_p2p_port_fails_with_a_clear_message() {
    let p2p = format!("/ip4/127.0.0.1/tcp/{}", free_port());
    let first = spawn(
        1,
        &["serve", "--bind", "127.0.0.1:0", "--p2p-listen", &p2p, "--no-local", "--secret", "one"],
    );
    let listening = first.wait_for("p2p listening on ");
    assert!(listening.starts_with(&p2p), "{listening}");

    let home = tempfile::tempdir().expect("tempdir");
    let mut second = nova(home.path());
    second.args([
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--p2p-listen",
        &p2p,
        "--no-local",
        "--secret",
        "two",
    ]);
    let out = run(&mut second, Duration::from_secs(30));
    let err = stderr(&out);
    assert!(!out.status.success(), "the second gateway must not start; stderr: {err}");
    assert!(err.contains(&p2p) && err.contains("already in use"), "{err}");
    assert!(err.contains("--p2p-listen /ip4/127.0.0.1/tcp/0"), "says what to do: {err}");
    drop(first);
}

/// The data dir is 0700 and the registry with its WAL 0600 while the gateway runs, even when
/// an older version left the directory 0755.
#[test]
fn the_data_dir_and_the_registry_are_private() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut cmd = nova(&data);
    cmd.args([
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--p2p-listen",
        "/ip4/127.0.0.1/tcp/0",
        "--no-local",
        "--token",
        TOKEN,
        "--secret",
        "s",
    ]);
    let gateway = spawn_cmd(cmd, tmp);
    gateway.wait_for("p2p listening on ");
    assert_eq!(mode(&data), 0o700, "data dir");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&data).expect("read_dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().expect("type").is_file() {
            assert_eq!(mode(&entry.path()), 0o600, "{name}");
        }
        seen.push(name);
    }
    for name in ["nova.db", "nova.db-wal", "nova.db-shm", "node.key"] {
        assert!(seen.iter().any(|n| n == name), "{name} missing from {seen:?}");
    }
}

/// The README's commands: `curl -d '{…}'` sends `application/x-www-form-urlencoded`, and
/// clients spell the auth scheme as they like.
#[tokio::test]
async fn json_posted_the_way_curl_posts_it_is_answered() {
    let gateway = spawn(
        2,
        &[
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--p2p-listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-pull",
            "--model",
            "smollm2-135m",
            "--token",
            TOKEN,
        ],
    );
    let url = gateway.wait_for("nova gateway listening on ");
    let client = reqwest::Client::new();
    let post = |path: &str, auth: String, body: &'static str| {
        client
            .post(format!("{url}{path}"))
            .header("authorization", auth)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .timeout(Duration::from_secs(60))
            .send()
    };
    let chat = r#"{"model":"nova","messages":[{"role":"user","content":"What is the capital of France?"}],"temperature":0,"max_tokens":8}"#;
    let r = post("/v1/chat/completions", format!("Bearer {TOKEN}"), chat).await.expect("chat");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert!(v["choices"][0]["message"]["content"].is_string(), "{v}");

    let submit = r#"{"prompt":"Hi","params":{"max_tokens":4}}"#;
    let r = post("/submit", format!("bearer  {TOKEN}"), submit).await.expect("submit");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert!(v["text"].is_string(), "{v}");

    // Malformed JSON is still a precise 400.
    let r = post("/submit", format!("BEARER {TOKEN}"), "{\"prompt\":").await.expect("bad");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("line 1 column 10"), "{v}");
}
