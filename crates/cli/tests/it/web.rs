//! The web dashboard in a real browser: headless Chromium (driven by playwright-core from
//! `tests/web/`) against a real gateway and two real workers on 127.0.0.1. The browser side is
//! `tests/web/dashboard.mjs`; this test starts the swarm, runs it, and kills a worker when it
//! asks, and drains the first worker's (fake) battery so its guard pauses it. Screenshots land
//! in `target/web-screenshots/`.
//!
//! Needs `node`, Chromium (`/usr/bin/chromium`, or `NOVA_CHROMIUM`) and `npm ci --prefix
//! tests/web` (all three done by `scripts/test.sh`). Without them the test is skipped loudly,
//! unless `CI` is set, where a missing tool is a failure.

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
/// What the browser side saves, at 1280x800 and 390x844.
const SHOTS: [&str; 5] =
    ["desktop-refused.png", "desktop.png", "phone.png", "desktop-stale.png", "phone-stale.png"];

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

/// Unplugged at 22 %: its guard pauses it.
fn drain(device: &crate::FakeDevice) {
    crate::put(&device.battery().join("status"), "Discharging\n");
    crate::put(&device.battery().join("capacity"), "22\n");
}

#[test]
fn the_dashboard_logs_in_chats_streams_stops_and_shows_the_swarm_live() {
    let chromium = std::env::var_os("NOVA_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let missing = missing_tools(&chromium);
    if !missing.is_empty() {
        let what = missing.join(", ");
        assert!(std::env::var_os("CI").is_none(), "CI is set and the browser test lacks: {what}");
        eprintln!("\n!!!!! SKIPPED the browser test of the dashboard: missing {what} !!!!!\n");
        return;
    }

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

    let shots = root().join("target/web-screenshots");
    for shot in SHOTS {
        let _ = std::fs::remove_file(shots.join(shot));
    }
    let mut node = Command::new("node")
        .arg(root().join("tests/web/dashboard.mjs"))
        .env("NOVA_URL", &url)
        .env("NOVA_TOKEN", TOKEN)
        .env("NOVA_WORKERS", WORKERS.join(","))
        .env("NOVA_SCREENSHOTS", &shots)
        .env("NOVA_CHROMIUM", &chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn node");
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

    let deadline = Instant::now() + Duration::from_secs(280);
    let mut ok = false;
    loop {
        let line = match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if Instant::now() > deadline {
                    let _ = node.kill();
                    panic!("the browser test did not finish within 280 s");
                }
                continue;
            }
        };
        println!("browser: {line}");
        if let Some(name) = line.strip_prefix("KILL ") {
            assert_eq!(name, WORKERS[1], "the browser asked to kill an unknown worker");
            if let Some(mut w) = b.take() {
                let _ = w.child.kill();
                let _ = w.child.wait();
            }
            writeln!(stdin, "KILLED").expect("tell the browser");
        } else if let Some(name) = line.strip_prefix("DRAIN ") {
            assert_eq!(name, WORKERS[0], "only the first worker has fake sensors");
            drain(&device);
            writeln!(stdin, "DRAINED").expect("tell the browser");
        } else if line == "OK" {
            ok = true;
        }
    }
    let status = node.wait().expect("node exit");
    assert!(status.success() && ok, "the browser test failed ({status}); see its output above");
    for shot in SHOTS {
        assert!(shots.join(shot).exists(), "no screenshot {shot} in {}", shots.display());
    }
}
