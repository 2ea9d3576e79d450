//! The web dashboard in a real browser: headless Chromium (driven by playwright-core from
//! `tests/web/`) against a real gateway on 127.0.0.1. Each test starts its swarm, runs one
//! script and answers the script's requests (see `tests/web/lib.mjs`):
//!
//! - `dashboard.mjs`: two real workers on the real model; chat, streaming, Stop, traces, the
//!   live view and the picture, a worker killed and another paused by its (fake) battery.
//! - `markdown.mjs`, `conversations.mjs`, `topology.mjs`: a worker in front of a stand-in
//!   model the script serves (`nova worker --backend openai-http`), so what "the model" says is
//!   exactly what the test needs: hostile Markdown, echoes of the history, a known answer.
//!
//! Screenshots land in `target/web-screenshots/`. Needs `node`, Chromium (`/usr/bin/chromium`,
//! or `NOVA_CHROMIUM`) and `npm ci --prefix tests/web` (all three done by `scripts/test.sh`).
//! Without them a test is skipped loudly, unless `CI` is set, where a missing tool is a failure.

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

const TOKEN: &str = "web-token";
const SECRET: &str = "web-secret-for-tests";
const WORKERS: [&str; 2] = ["web-a", "web-b"];

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What is missing to run a browser here, if anything.
pub(crate) fn missing_tools(chromium: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    let node = Command::new("node").arg("--version").stdout(Stdio::null()).status();
    if !node.is_ok_and(|s| s.success()) {
        missing.push("node (apt-get install nodejs npm)".to_string());
    }
    if !chromium.exists() {
        missing.push(format!("{} (apt-get install chromium)", chromium.display()));
    }
    if !root().join("tests/web/node_modules/playwright-core").exists() {
        missing.push("playwright-core (npm ci --prefix tests/web)".to_string());
    }
    missing
}

/// The browser to use, or `None` (the test is then skipped) when this machine lacks a tool.
fn chromium_or_skip(what: &str) -> Option<PathBuf> {
    let chromium = std::env::var_os("NOVA_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let missing = missing_tools(&chromium);
    if missing.is_empty() {
        return Some(chromium);
    }
    let missing = missing.join(", ");
    assert!(std::env::var_os("CI").is_none(), "CI is set and the browser test lacks: {missing}");
    eprintln!("\n!!!!! SKIPPED the browser test of {what}: missing {missing} !!!!!\n");
    None
}

fn shots_dir() -> PathBuf {
    root().join("target/web-screenshots")
}

/// Runs `tests/web/<script>` against the gateway at `url` with `extra` environment. Each line it
/// prints goes to `answer`, whose reply (if any) is written back on its stdin. Passes when the
/// script prints `OK` and exits 0 within `limit`; afterwards every one of `shots` must exist.
fn drive(
    script: &str,
    url: &str,
    chromium: &Path,
    extra: &[(&str, &str)],
    shots: &[&str],
    limit: Duration,
    mut answer: impl FnMut(&str) -> Option<String>,
) {
    let dir = shots_dir();
    for shot in shots {
        let _ = std::fs::remove_file(dir.join(shot));
    }
    let mut cmd = Command::new("node");
    cmd.arg(root().join("tests/web").join(script))
        .env("NOVA_URL", url)
        .env("NOVA_TOKEN", TOKEN)
        .env("NOVA_SCREENSHOTS", &dir)
        .env("NOVA_CHROMIUM", chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut node = cmd.spawn().expect("spawn node");
    let mut stdin = node.stdin.take().expect("stdin");
    let stdout = node.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::sync_channel(64);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + limit;
    let mut ok = false;
    loop {
        let line = match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if Instant::now() > deadline {
                    let _ = node.kill();
                    panic!("{script} did not finish within {limit:?}");
                }
                continue;
            }
        };
        println!("browser: {line}");
        if line == "OK" {
            ok = true;
        } else if let Some(reply) = answer(&line) {
            writeln!(stdin, "{reply}").expect("answer the browser script");
        }
    }
    let status = node.wait().expect("node exit");
    assert!(status.success() && ok, "{script} failed ({status}); see its output above");
    for shot in shots {
        assert!(dir.join(shot).exists(), "no screenshot {shot} in {}", dir.display());
    }
}

/// A gateway and, when the script asks with `UPSTREAM <url>`, a worker fronting the stand-in
/// model the script serves there; the script is told `STARTED <name>`.
fn with_stand_in_model(script: &str, shots: &[&str], limit: Duration) {
    let Some(chromium) = chromium_or_skip(script) else { return };
    let (_gateway, url, join) = crate::spawn_gateway(TOKEN, SECRET, &[]);
    let mut workers = Vec::new();
    drive(script, &url, &chromium, &[], shots, limit, |line| {
        let upstream = line.strip_prefix("UPSTREAM ")?;
        let name = format!("stand-in-{}", workers.len() + 1);
        let mut args = vec!["worker", "--join", join.as_str(), "--secret", SECRET];
        args.extend(["--name", &name, "--heartbeat-ms", "500"]);
        args.extend(["--backend", "openai-http", "--url", upstream, "--model", "stand-in"]);
        let w = crate::spawn_empty(&args);
        w.wait_for("worker ");
        workers.push(w);
        Some(format!("STARTED {name}"))
    });
}

/// Unplugged at 22 %: its guard pauses it.
fn drain(device: &crate::FakeDevice) {
    crate::put(&device.battery().join("status"), "Discharging\n");
    crate::put(&device.battery().join("capacity"), "22\n");
}

#[test]
fn the_dashboard_logs_in_chats_streams_stops_and_shows_the_swarm_live() {
    let Some(chromium) = chromium_or_skip("the dashboard") else { return };
    let (_gateway, url, join) = crate::spawn_gateway(TOKEN, SECRET, &[]);
    let device = crate::FakeDevice::new("Charging");
    let guard = device.guard_flags();
    let guard: Vec<&str> = guard.iter().map(String::as_str).collect();
    let _a = crate::swarm_worker(&join, SECRET, WORKERS[0], &guard);
    // The second worker shares a document, for the "Answer from shared documents" check.
    let mut b = Some(crate::knowledge::knowing_worker(
        &join,
        SECRET,
        WORKERS[1],
        crate::knowledge::b_docs,
        true,
    ));
    let shots =
        ["desktop-refused.png", "desktop.png", "phone.png", "desktop-stale.png", "phone-stale.png"];
    let workers = WORKERS.join(",");
    let env = [("NOVA_WORKERS", workers.as_str())];
    drive("dashboard.mjs", &url, &chromium, &env, &shots, Duration::from_secs(280), |line| {
        if let Some(name) = line.strip_prefix("KILL ") {
            assert_eq!(name, WORKERS[1], "the browser asked to kill an unknown worker");
            if let Some(mut w) = b.take() {
                let _ = w.child.kill();
                let _ = w.child.wait();
            }
            Some("KILLED".into())
        } else if let Some(name) = line.strip_prefix("DRAIN ") {
            assert_eq!(name, WORKERS[0], "only the first worker has fake sensors");
            drain(&device);
            Some("DRAINED".into())
        } else {
            None
        }
    });
}

#[test]
fn the_dashboard_renders_hostile_model_output_as_inert_markdown() {
    with_stand_in_model(
        "markdown.mjs",
        &["markdown-hostile.png", "markdown-huge.png", "markdown-phone.png"],
        Duration::from_secs(240),
    );
}

#[test]
fn the_dashboard_keeps_conversations_in_the_browser() {
    with_stand_in_model(
        "conversations.mjs",
        &["conversations-desktop.png", "conversations-phone.png"],
        Duration::from_secs(240),
    );
}

#[test]
fn the_dashboard_draws_the_swarm_for_one_to_three_hundred_devices() {
    with_stand_in_model(
        "topology.mjs",
        &[
            "topology-1-desktop.png",
            "topology-20-desktop.png",
            "topology-20-phone.png",
            "topology-100-desktop.png",
            "topology-100-phone.png",
        ],
        Duration::from_secs(180),
    );
}
