//! The swarm secret stays off command lines (issue 9, defect 10c: `--secret` showed in `ps` to
//! every local user). `serve` prints the join command with `--secret-file`, never the secret,
//! and a worker started with that printed command, or with `NOVA_SWARM_SECRET`, joins.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{home, nova, spawn, spawn_cmd, Proc};

const TOKEN: &str = "secret-file-token";

/// Lines `proc` prints until one starts with `last` (that one included).
fn lines_until(proc: &Proc, last: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for prefix in ["nova gateway listening on ", "p2p listening on ", last] {
        seen.push(format!("{prefix}{}", proc.wait_for(prefix)));
    }
    seen
}

async fn ready_names(url: &str) -> Vec<String> {
    let v: Value = reqwest::Client::new()
        .get(format!("{url}/v1/swarm"))
        .bearer_auth(TOKEN)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("swarm")
        .json()
        .await
        .expect("json");
    v["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["state"] == "ready")
        .filter_map(|w| w["worker"]["name"].as_str().map(String::from))
        .collect()
}

#[tokio::test]
async fn serve_points_to_the_secret_file_and_workers_join_without_a_secret_on_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_path = dir.path().join("swarm.secret");
    let secret = "file-held-secret-0123456789abcdef";
    std::fs::write(&secret_path, format!("{secret}\n")).expect("write secret");
    let path = secret_path.to_str().expect("utf-8");
    let gateway = spawn(
        1,
        &[
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--p2p-listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-local",
            "--token",
            TOKEN,
            "--secret-file",
            path,
            "--stale-after-ms",
            "1500",
        ],
    );
    let mut said = lines_until(&gateway, "add a device with: ");
    said.push(gateway.wait_for("swarm secret: "));
    let url = said[0].trim_start_matches("nova gateway listening on ").to_string();
    let join_cmd = said[2].trim_start_matches("add a device with: ").to_string();
    for line in &said {
        assert!(!line.contains(secret), "the secret was printed: {line}");
    }
    assert!(join_cmd.ends_with(&format!("--secret-file {path}")), "{join_cmd}");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", gateway.child.id())).expect("cmdline");
    assert!(!String::from_utf8_lossy(&cmdline).contains(secret), "the secret is in ps");

    // The printed command, as an operator would paste it (plus test-only flags).
    let words: Vec<&str> = join_cmd.split_whitespace().collect();
    assert_eq!(words[..2], ["nova", "worker"], "{join_cmd}");
    let mut args: Vec<&str> = words[1..].to_vec();
    args.extend(["--no-pull", "--name", "by-file", "--heartbeat-ms", "300"]);
    let by_file = spawn(1, &args);
    by_file.wait_for("worker ");

    // The environment works too, with nothing secret in the arguments.
    let home = home();
    let mut cmd = nova(home.path());
    let join = said[1].trim_start_matches("p2p listening on ");
    cmd.args(["worker", "--join", join, "--no-pull", "--name", "by-env", "--heartbeat-ms", "300"])
        .env("NOVA_SWARM_SECRET", secret)
        .env("NOVA_THREADS", "1");
    let by_env = spawn_cmd(cmd, home);
    by_env.wait_for("worker ");

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let names = ready_names(&url).await;
        if names.iter().any(|n| n == "by-file") && names.iter().any(|n| n == "by-env") {
            break;
        }
        assert!(Instant::now() < deadline, "both workers never joined: {names:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn a_worker_without_any_secret_is_told_where_to_find_it() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = crate::run(
        nova(home.path()).args(["worker", "--join", "127.0.0.1:9", "--no-pull"]),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = crate::stderr(&out);
    assert!(err.contains("--secret-file"), "{err}");
    let empty = home.path().join("empty.secret");
    std::fs::write(&empty, "\n").expect("write");
    let out = crate::run(
        nova(home.path()).args([
            "worker",
            "--join",
            "127.0.0.1:9",
            "--no-pull",
            "--secret-file",
            empty.to_str().expect("utf-8"),
        ]),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    assert!(crate::stderr(&out).contains("is empty"), "{}", crate::stderr(&out));
}
