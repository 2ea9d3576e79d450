//! `nova serve` end to end: the real binary, the real model, real HTTP on 127.0.0.1.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::{json, Value};

use crate::{nova, spawn, Proc};

const TOKEN: &str = "it-token";

/// A running gateway.
struct Serve {
    _proc: Proc,
    url: String,
}

/// Starts `nova serve` on free ports with the default model and waits for its listen line.
fn serve(extra: &[&str]) -> Serve {
    let mut args = vec!["serve", "--bind", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0"];
    args.extend(["--no-pull", "--model", "smollm2-135m"]);
    args.extend(extra);
    let proc = spawn(2, &args);
    let url = proc.wait_for("nova gateway listening on ");
    Serve { _proc: proc, url }
}

async fn chat(s: &Serve, token: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(token)
        .json(&body)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn serves_openai_chat_whole_and_streamed_and_refuses_wrong_tokens() {
    let s = serve(&["--token", TOKEN]);
    let q = json!({"messages": [{"role": "user", "content": "What is the capital of France?"}], "temperature": 0});
    let r = chat(&s, TOKEN, q.clone()).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert!(v["choices"][0]["message"]["content"].as_str().unwrap_or("").contains("Paris"), "{v}");
    assert_eq!(v["nova"]["attempts"][0]["outcome"], "won");

    let r = chat(&s, "not-the-token", q.clone()).await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "invalid_api_key");

    let mut streamed = q;
    streamed["stream"] = json!(true);
    let text = chat(&s, TOKEN, streamed).await.text().await.expect("body");
    let datas: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(datas.last(), Some(&"[DONE]"), "{text}");
    let content: String = datas
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(String::from))
        .collect();
    assert!(content.contains("Paris"), "{content}");

    let health = reqwest::get(format!("{}/healthz", s.url)).await.expect("healthz");
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn the_official_openai_client_gets_a_streamed_answer() {
    let python = std::env::var("NOVA_OPENAI_PYTHON").expect(
        "NOVA_OPENAI_PYTHON is not set; scripts/test.sh installs the openai client and sets it",
    );
    let s = serve(&["--token", TOKEN]);
    let script = r#"
import sys, openai
client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key=sys.argv[2])
models = [m.id for m in client.models.list()]
assert "smollm2-135m" in models and "nova" in models, models
stream = client.chat.completions.create(
    model="nova", temperature=0, stream=True,
    messages=[{"role": "user", "content": "What is the capital of France?"}],
    extra_body={"nova": {"strategy": "race", "fanout": 1}},
)
parts = [c.choices[0].delta.content or "" for c in stream if c.choices]
print(len(parts), "".join(parts))
"#;
    let out = tokio::task::spawn_blocking({
        let url = s.url.clone();
        move || Command::new(python).arg("-c").arg(script).arg(url).arg(TOKEN).output()
    })
    .await
    .expect("join")
    .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (n, text) = stdout.trim().split_once(' ').expect("count and text");
    assert!(n.parse::<usize>().unwrap_or(0) > 2, "expected several chunks: {stdout}");
    assert!(text.contains("Paris"), "{stdout}");
}

#[test]
fn the_api_token_is_generated_once_and_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let home = tempfile::tempdir().expect("tempdir");
    let token_of = |home: &Path| {
        let mut cmd = nova(home);
        cmd.args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--p2p-listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-local",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("spawn");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        assert!(first.starts_with("nova gateway listening on"), "{first}");
        let _ = child.kill();
        let _ = child.wait();
        std::fs::read_to_string(home.join("api-token")).expect("token file")
    };
    let first = token_of(home.path());
    assert_eq!(first.len(), 48);
    let mode = std::fs::metadata(home.path().join("api-token")).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(token_of(home.path()), first, "the token persists across restarts");
}
