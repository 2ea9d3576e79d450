//! Log files of a long-running command: the real binary writes a text and a JSON-lines file
//! under `<data dir>/logs/`, flushes them on a clean stop, and never writes a secret there.

use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::nova;

/// Starts `nova serve --no-local` in `home` and returns once it listens.
fn serve(home: &Path) -> Child {
    let mut child = nova(home)
        .args(["serve", "--bind", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0"])
        .arg("--no-local")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nova");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let first = BufReader::new(stdout).lines().next().and_then(Result::ok);
        let _ = tx.send(first.unwrap_or_default());
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(line) if line.starts_with("nova gateway listening on") => child,
        other => {
            let _ = child.kill();
            panic!("nova serve did not start: {other:?}");
        }
    }
}

/// SIGTERM, then the exit within a deadline.
fn stop(mut child: Child) -> Output {
    let status =
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("nova serve did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn files_with(dir: &Path, ext: &str) -> Vec<String> {
    fs::read_dir(dir)
        .expect("logs dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .map(|p| fs::read_to_string(p).expect("read"))
        .collect()
}

#[test]
fn serve_writes_text_and_json_lines_logs_and_flushes_them_on_exit() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = stop(serve(home.path()));
    assert!(out.status.success(), "{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));

    let logs = home.path().join("logs");
    let [text] = &files_with(&logs, "log")[..] else { panic!("one text log in {logs:?}") };
    let [json] = &files_with(&logs, "jsonl")[..] else { panic!("one JSON log in {logs:?}") };
    assert!(text.contains("INFO") && text.contains("nova started"), "{text}");
    let events: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(events.first().map(|e| e["message"].clone()), Some("nova started".into()));
    assert_eq!(events[0]["level"], "INFO");
    assert!(events[0]["timestamp"].is_string());
    // The last line is written while stopping: it is there only if the queue was flushed.
    assert_eq!(events.last().map(|e| e["message"].clone()), Some("nova stopped".into()));

    for secret in ["swarm-secret", "api-token"] {
        let value = fs::read_to_string(home.path().join(secret)).expect("secret file");
        let value = value.trim();
        assert!(value.len() >= 16, "{secret}");
        assert!(!text.contains(value) && !json.contains(value), "{secret} leaked into the logs");
    }
}

#[test]
fn an_unwritable_logs_dir_is_one_warning_not_a_failure() {
    let home = tempfile::tempdir().expect("tempdir");
    // A file where the directory should be: unwritable even for root.
    fs::write(home.path().join("logs"), "").expect("write");
    let out = stop(serve(home.path()));
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("cannot write log files").count(), 1, "{err}");
    assert!(err.contains("logging to stderr only"), "{err}");
}
