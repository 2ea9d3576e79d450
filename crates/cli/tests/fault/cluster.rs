//! Real nodes as child processes: a gateway that can be restarted on the same ports and data
//! dir, and workers that can be killed, stopped and continued. Every process is killed when its
//! handle drops, so a failing test leaves nothing behind.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};
use serde_json::Value;

/// Bearer token of every harness gateway.
pub(crate) const TOKEN: &str = "fault-token";
/// Swarm secret of every harness swarm.
pub(crate) const SECRET: &str = "fault-swarm-secret-for-tests";

/// The data dir holding the pulled catalog models.
fn shared_home() -> PathBuf {
    std::env::var_os("NOVA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/nova")))
        .expect("HOME or NOVA_HOME must be set")
}

/// A fresh data dir with the default model linked in.
pub(crate) fn home() -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(home.path().join("models")).expect("mkdir");
    let f = "SmolLM2-135M-Instruct.Q4_1.gguf";
    std::os::unix::fs::symlink(
        shared_home().join("models").join(f),
        home.path().join("models").join(f),
    )
    .expect("symlink the default model");
    home
}

/// `nova` with a clean environment, run inside network namespace `ns` when given (else in the
/// caller's, which is the scenario's namespace when it has one).
fn nova(ns: Option<&str>, home: &Path, threads: u32) -> Command {
    let bin = env!("CARGO_BIN_EXE_nova");
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, bin]);
            c
        }
        None => Command::new(bin),
    };
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("NOVA_HOME", home)
        .env("NOVA_THREADS", threads.to_string());
    cmd
}

/// A running `nova` process, killed on drop, with its stdout lines on a channel and its stderr
/// in `<data dir>/stderr.log`.
pub(crate) struct Node {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Shown in messages.
    pub(crate) name: String,
    log: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        // A stopped process must be continued to die promptly and be reaped.
        let _ = self.child.kill();
        let _ = nix::sys::signal::kill(self.pid(), Signal::SIGCONT);
        let _ = self.child.wait();
    }
}

impl Node {
    fn spawn(mut cmd: Command, home: &Path, name: &str) -> Self {
        let log = home.join(format!("{name}.stderr.log"));
        let err = std::fs::File::create(&log).expect("create the log file");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(err)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn nova");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::sync_channel(64);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, lines, name: name.into(), log }
    }

    pub(crate) fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// The rest of the first stdout line starting with `prefix`.
    pub(crate) fn wait_for(&mut self, prefix: &str, limit: Duration) -> String {
        self.try_wait_for(prefix, limit).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Node::wait_for`], or why not (it exited, or said nothing in time).
    pub(crate) fn try_wait_for(&mut self, prefix: &str, limit: Duration) -> Result<String, String> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest.to_string());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        // Give a process that is exiting the time to finish writing its error.
        let _ = self.wait_exit(Duration::from_millis(500));
        Err(format!(
            "{}: no line starting with {prefix:?} within {limit:?}; {}",
            self.name,
            self.tail()
        ))
    }

    /// The end of the stderr log, for failure messages.
    pub(crate) fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(2000);
        let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
        format!("stderr tail: {}", &text[start..])
    }

    pub(crate) fn signal(&self, sig: Signal) {
        nix::sys::signal::kill(self.pid(), sig).expect("signal");
    }

    /// SIGKILL, then reap.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `limit` for the process to exit.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Resident memory in KiB, from /proc.
    pub(crate) fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

/// A gateway (`nova serve --no-local`) that keeps its ports and data dir across restarts.
pub(crate) struct Gateway {
    node: Option<Node>,
    home: tempfile::TempDir,
    /// `http://127.0.0.1:<port>`.
    pub(crate) url: String,
    http: u16,
    /// The p2p port workers join.
    pub(crate) p2p: u16,
    /// The IPv4 address the p2p side listens on.
    p2p_ip: String,
    extra: Vec<String>,
    starts: u32,
}

impl Gateway {
    /// Starts a gateway on free ports. `p2p_ip` is 127.0.0.1, or 0.0.0.0 inside a scenario
    /// namespace (whose only interfaces are its loopback and the veths the harness made).
    pub(crate) fn start(p2p_ip: &str, extra: &[&str]) -> Self {
        Self::try_start(p2p_ip, extra).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Gateway::start`], or why the gateway did not come up (e.g. a flag it does not know).
    pub(crate) fn try_start(p2p_ip: &str, extra: &[&str]) -> Result<Self, String> {
        let mut g = Self {
            node: None,
            home: home(),
            url: String::new(),
            http: 0,
            p2p: 0,
            p2p_ip: p2p_ip.into(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            starts: 0,
        };
        g.launch()?;
        Ok(g)
    }

    fn launch(&mut self) -> Result<(), String> {
        self.starts += 1;
        let bind = format!("127.0.0.1:{}", self.http);
        let listen = format!("/ip4/{}/tcp/{}", self.p2p_ip, self.p2p);
        let mut args: Vec<String> =
            ["serve", "--bind", &bind, "--p2p-listen", &listen, "--no-local"]
                .into_iter()
                .map(String::from)
                .collect();
        args.extend(self.extra.iter().cloned());
        let mut node = serve(self.home.path(), &format!("gateway{}", self.starts), &args);
        let url = node.try_wait_for("nova gateway listening on ", Duration::from_secs(30))?;
        let p2p = node.try_wait_for("p2p listening on ", Duration::from_secs(30))?;
        self.http = url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("http port");
        // `/ip4/<ip>/tcp/<port>/p2p/<id>`
        self.p2p = p2p.split('/').nth(4).and_then(|p| p.parse().ok()).expect("p2p port");
        self.url = url;
        self.node = Some(node);
        Ok(())
    }

    /// The running process.
    pub(crate) fn node(&self) -> &Node {
        self.node.as_ref().expect("the gateway is running")
    }

    /// SIGTERM, wait for the exit (bounded), start again on the same ports and data dir.
    /// Returns how long the gateway took to exit and to answer again.
    pub(crate) fn restart(&mut self) -> (Duration, Duration) {
        let t = Instant::now();
        let mut old = self.node.take().expect("running");
        old.signal(Signal::SIGTERM);
        let exited = old.wait_exit(Duration::from_secs(20));
        let stopped = t.elapsed();
        assert!(exited.is_some(), "the gateway ignored SIGTERM for 20 s; {}", old.tail());
        drop(old);
        let t = Instant::now();
        self.launch().unwrap_or_else(|e| panic!("the gateway did not start again: {e}"));
        (stopped, t.elapsed())
    }

    pub(crate) fn rss_kib(&self) -> Option<u64> {
        self.node.as_ref().and_then(Node::rss_kib)
    }
}

/// `nova serve ARGS` (plus the harness's token and secret) with data dir `home`.
pub(crate) fn serve(home: &Path, name: &str, args: &[String]) -> Node {
    let mut cmd = nova(None, home, 1);
    cmd.args(args).args(["--token", TOKEN, "--secret", SECRET, "--stale-after-ms", "1500"]);
    Node::spawn(cmd, home, name)
}

/// A worker with its own data dir.
pub(crate) struct Worker {
    /// The process; `None` once killed.
    pub(crate) node: Node,
    /// Kept alive as long as the worker runs.
    _home: tempfile::TempDir,
}

impl Worker {
    /// Starts `nova worker --name <name>` joining `join` (host:port) and waits until it has
    /// loaded its model. `ns`: run inside this network namespace.
    pub(crate) fn start(ns: Option<&str>, join: &str, name: &str) -> Self {
        let home = home();
        let mut cmd = nova(ns, home.path(), 1);
        cmd.args(["worker", "--join", join, "--secret", SECRET, "--no-pull"]).args([
            "--name",
            name,
            "--heartbeat-ms",
            "500",
        ]);
        let mut node = Node::spawn(cmd, home.path(), name);
        node.wait_for("worker ", Duration::from_secs(90));
        Self { node, _home: home }
    }
}

/// The gateway's swarm view.
pub(crate) async fn swarm(url: &str) -> Option<Value> {
    reqwest::Client::new()
        .get(format!("{url}/v1/swarm"))
        .bearer_auth(TOKEN)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// Waits until the workers named `names` are all ready; returns how long it took, or `None`
/// after `limit`.
pub(crate) async fn wait_ready(url: &str, names: &[&str], limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if let Some(v) = swarm(url).await {
            let ready = crate::swarm_state::ready_names(&v);
            if names.iter().all(|n| ready.iter().any(|r| r == n)) {
                return Some(t.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// Starts workers in parallel (model loads overlap); `(namespace, join address, name)` each.
pub(crate) async fn start_workers(specs: &[(Option<&str>, &str, &str)]) -> Vec<Worker> {
    let handles: Vec<_> = specs
        .iter()
        .map(|(ns, join, name)| {
            let (ns, join, name) = (ns.map(String::from), join.to_string(), name.to_string());
            tokio::task::spawn_blocking(move || Worker::start(ns.as_deref(), &join, &name))
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("a worker failed to start"));
    }
    out
}
