//! Multi-process tests of the real `nova` binary on the real models. Models come from the data
//! dir that `scripts/test.sh` fills; tests that write use a temporary data dir of their own.

mod ask;
mod batching;
mod chat;
mod cors;
mod council;
mod edge_cases;
mod embeddings;
mod eval;
mod forget;
mod guard;
mod handover;
mod hints;
mod http_limits;
mod install;
mod join;
mod knowledge;
mod lan;
mod logs;
mod model;
mod ollama;
mod openai_client;
mod pool;
mod rag;
mod readme;
mod secret_file;
mod serve;
mod swarm;
mod update;
mod upstream;
mod web;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// The data dir holding the pulled catalog models.
pub(crate) fn shared_home() -> PathBuf {
    std::env::var_os("NOVA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/nova")))
        .expect("HOME or NOVA_HOME must be set")
}

/// `nova` with a clean environment and the given data dir.
pub(crate) fn nova(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nova"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("NOVA_HOME", home)
        .env("NOVA_THREADS", "2");
    cmd
}

/// Runs `cmd` with a deadline, so a hang fails the test.
pub(crate) fn run(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn nova");
    let started = std::time::Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "nova did not finish within {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A child process killed on drop, with its stdout lines on a channel.
pub(crate) struct Proc {
    pub(crate) child: Child,
    lines: mpsc::Receiver<String>,
    _home: tempfile::TempDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Its data dir.
    pub(crate) fn home(&self) -> &Path {
        self._home.path()
    }

    pub(crate) fn wait_for(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return rest.to_string();
                }
            }
        }
        panic!("no line starting with {prefix:?} within 60 s");
    }
}

/// A data dir with the catalog models linked in.
pub(crate) fn home() -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(home.path().join("models")).expect("mkdir");
    for f in ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"] {
        std::os::unix::fs::symlink(
            shared_home().join("models").join(f),
            home.path().join("models").join(f),
        )
        .expect("symlink");
    }
    home
}

/// Starts `nova ARGS` in a fresh data dir (catalog models linked in) with `threads` threads.
pub(crate) fn spawn(threads: u32, args: &[&str]) -> Proc {
    let home = home();
    let mut cmd = nova(home.path());
    cmd.args(args).env("NOVA_THREADS", threads.to_string());
    spawn_cmd(cmd, home)
}

/// A gateway on 127.0.0.1 (free ports, no local engine: workers bring theirs) with a 1.5 s
/// staleness window (unless `extra` sets one), its API URL and the p2p address workers join.
/// `extra` adds flags.
pub(crate) fn spawn_gateway(token: &str, secret: &str, extra: &[&str]) -> (Proc, String, String) {
    let mut args = vec![
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--p2p-listen",
        "/ip4/127.0.0.1/tcp/0",
        "--no-local",
        "--token",
        token,
        "--secret",
        secret,
    ];
    if !extra.contains(&"--stale-after-ms") {
        args.extend_from_slice(&["--stale-after-ms", "1500"]);
    }
    args.extend_from_slice(extra);
    let gateway = spawn(1, &args);
    let url = gateway.wait_for("nova gateway listening on ");
    let join = gateway.wait_for("p2p listening on ");
    (gateway, url, join)
}

/// Starts `nova ARGS` in a fresh, empty data dir: no models, no keys, no secrets.
pub(crate) fn spawn_empty(args: &[&str]) -> Proc {
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = nova(home.path());
    cmd.args(args);
    spawn_cmd(cmd, home)
}

/// The stdout and stderr lines of `child` (both piped), interleaved on one channel. A line the
/// reader cannot hand over (nobody reads, the channel is full) is dropped rather than let the
/// child block on a full pipe.
pub(crate) fn output_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, lines) = mpsc::sync_channel(256);
    for out in [
        Box::new(child.stdout.take().expect("stdout piped")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("stderr piped")),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Err(mpsc::TrySendError::Disconnected(_)) = tx.try_send(line) {
                    return;
                }
            }
        });
    }
    lines
}

/// The python that `var` names (a venv `scripts/test.sh` installs an official client in), or
/// `None` with a loud note when it is not set; under CI a missing one fails the test instead.
pub(crate) fn client_python(var: &str) -> Option<std::ffi::OsString> {
    let python = std::env::var_os(var);
    if python.is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI is set and {var} is not");
        eprintln!("\n!!!!! SKIPPED: {var} is not set (scripts/test.sh sets it) !!!!!\n");
    }
    python
}

/// Runs `python -c script args…` on a blocking thread (the official clients' tests).
pub(crate) async fn run_python(
    python: impl Into<std::ffi::OsString>,
    script: &'static str,
    args: Vec<String>,
) -> Output {
    let python = python.into();
    tokio::task::spawn_blocking(move || {
        Command::new(python).arg("-c").arg(script).args(args).output()
    })
    .await
    .expect("join")
    .expect("run python")
}

/// Starts `cmd`, owning `home` for as long as the process lives.
pub(crate) fn spawn_cmd(mut cmd: Command, home: tempfile::TempDir) -> Proc {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn nova");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::sync_channel(64);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Proc { child, lines, _home: home }
}

/// The flags of a `nova worker` of the default model joining `join` with `secret` as `name`,
/// heartbeating every 500 ms.
pub(crate) fn worker_args<'a>(join: &'a str, secret: &'a str, name: &'a str) -> Vec<&'a str> {
    vec![
        "worker",
        "--join",
        join,
        "--secret",
        secret,
        "--no-pull",
        "--model",
        "smollm2-135m",
        "--heartbeat-ms",
        "500",
        "--name",
        name,
    ]
}

/// A `nova worker` (see [`worker_args`]), started (`extra` adds flags).
pub(crate) fn swarm_worker(join: &str, secret: &str, name: &str, extra: &[&str]) -> Proc {
    let mut args = worker_args(join, secret, name);
    args.extend_from_slice(extra);
    let w = spawn(1, &args);
    w.wait_for("worker ");
    w
}

/// `POST /submit` with `token`: the status and the JSON body (`null` when it has none).
pub(crate) async fn submit(
    url: &str,
    token: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/submit"))
        .bearer_auth(token)
        .json(body)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("submit");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// `GET /v1/swarm`.
pub(crate) async fn swarm_view(url: &str, token: &str) -> serde_json::Value {
    let r = reqwest::Client::new()
        .get(format!("{url}/v1/swarm"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    r.expect("swarm").json().await.expect("json")
}

/// Waits (at most 60 s) until `n` workers are ready.
pub(crate) async fn wait_ready(url: &str, token: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = swarm_view(url, token).await;
        let ready = v["workers"]
            .as_array()
            .map_or(0, |ws| ws.iter().filter(|w| w["state"] == "ready").count());
        if ready >= n {
            return;
        }
        assert!(Instant::now() < deadline, "only {ready} of {n} workers ready: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes `text` to `path` by rename, so a worker's guard never reads half a value.
pub(crate) fn put(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// A fake phone: the sysfs and procfs trees a worker's guard reads (a battery at 80 %, 36 °C,
/// 2 GB free), and the flags that point a worker's guard at them, read every 100 ms.
pub(crate) struct FakeDevice {
    dir: tempfile::TempDir,
}

impl FakeDevice {
    /// Battery `status` is `Charging` or `Discharging`.
    pub(crate) fn new(status: &str) -> Self {
        let d = Self { dir: tempfile::tempdir().expect("tempdir") };
        put(&d.battery().join("type"), "Battery\n");
        put(&d.battery().join("status"), &format!("{status}\n"));
        put(&d.battery().join("capacity"), "80\n");
        put(&d.zone(), "36000\n");
        put(&d.path("proc/meminfo"), "MemTotal: 4000000 kB\nMemAvailable: 2000000 kB\n");
        d
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub(crate) fn battery(&self) -> PathBuf {
        self.path("sys/class/power_supply/battery")
    }

    pub(crate) fn zone(&self) -> PathBuf {
        self.path("sys/class/thermal/thermal_zone0/temp")
    }

    /// `--guard-interval-ms 100 --guard-sysfs-root … --guard-proc-root …`.
    pub(crate) fn guard_flags(&self) -> Vec<String> {
        let (sys, proc_root) = (self.path("sys"), self.path("proc"));
        vec![
            "--guard-interval-ms".into(),
            "100".into(),
            "--guard-sysfs-root".into(),
            sys.to_str().expect("utf-8").into(),
            "--guard-proc-root".into(),
            proc_root.to_str().expect("utf-8").into(),
        ]
    }
}
