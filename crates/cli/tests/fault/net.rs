//! Network namespaces the harness creates, uses and deletes: a scenario namespace holding the
//! gateway, the test's client and the healthy workers (on its own loopback), and a worker
//! namespace joined to it by a veth pair in a private /30. Nothing is routed anywhere else, and
//! no address outside these namespaces is used. A partition takes the worker's link down; loss
//! is an nftables random drop inside the worker's namespace.

use std::{
    future::Future,
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use nix::sched::CloneFlags;

/// Every namespace the harness makes starts with this, then the owning process id.
const PREFIX: &str = "nova-fault-";
/// The scenario namespace's end of the veth pair.
pub(crate) const GATEWAY_IP: &str = "10.213.0.1";
/// The worker namespace's end.
const WORKER_IP: &str = "10.213.0.2";

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A network namespace, deleted on drop (also when the test panics).
pub(crate) struct Netns {
    pub(crate) name: String,
}

impl Netns {
    fn add(tag: &str) -> Result<Self, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name =
            format!("{PREFIX}{}-{}{tag}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        ip(&["netns", "add", &name])?;
        let ns = Self { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth end inside it, and so its peer.
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Deletes namespaces left by harness processes that died without cleaning up (SIGKILLed by a
/// test runner's timeout).
fn sweep() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else { return };
    for e in dir.flatten().take(1000) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|r| r.split('-').next()) else {
            continue;
        };
        if !PathBuf::from("/proc").join(pid).exists() {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

/// The scenario namespace and one worker namespace joined by a veth pair.
pub(crate) struct Topology {
    /// Holds the gateway, the healthy workers and the test's client.
    pub(crate) scenario: Netns,
    /// Holds the faulted worker.
    pub(crate) worker: Netns,
    /// The worker's end of the veth pair.
    veth: String,
}

impl Topology {
    /// Creates both namespaces, or says why it cannot (not root, no `ip netns`).
    pub(crate) fn new() -> Result<Self, String> {
        sweep();
        let scenario = Netns::add("s")?;
        let worker = Netns::add("w")?;
        let n = std::process::id();
        let (outer, veth) = (format!("nfs{n}"), format!("nfw{n}"));
        ip(&[
            "-n",
            &scenario.name,
            "link",
            "add",
            &outer,
            "type",
            "veth",
            "peer",
            "name",
            &veth,
            "netns",
            &worker.name,
        ])?;
        ip(&["-n", &scenario.name, "addr", "add", &format!("{GATEWAY_IP}/30"), "dev", &outer])?;
        ip(&["-n", &worker.name, "addr", "add", &format!("{WORKER_IP}/30"), "dev", &veth])?;
        ip(&["-n", &scenario.name, "link", "set", &outer, "up"])?;
        ip(&["-n", &worker.name, "link", "set", &veth, "up"])?;
        Ok(Self { scenario, worker, veth })
    }

    /// Cuts the worker off: its link goes down (packets in both directions are dropped; TCP
    /// connections stay open, as with Wi-Fi lost for a while).
    pub(crate) fn partition(&self) {
        ip(&["-n", &self.worker.name, "link", "set", &self.veth, "down"]).expect("link down");
    }

    /// Restores the worker's link.
    pub(crate) fn heal(&self) {
        ip(&["-n", &self.worker.name, "link", "set", &self.veth, "up"]).expect("link up");
    }

    /// Drops `percent` % of the packets the worker sends and of those it receives, at random
    /// (nftables `numgen random` inside the worker's namespace). Errs without `nft`.
    pub(crate) fn add_loss(&self, percent: u32) -> Result<(), String> {
        let rules = format!(
            "table inet nova_fault {{\n\
             chain in {{ type filter hook input priority 0; iifname \"{veth}\" numgen random mod 100 < {percent} drop; }}\n\
             chain out {{ type filter hook output priority 0; oifname \"{veth}\" numgen random mod 100 < {percent} drop; }}\n\
             }}\n",
            veth = self.veth
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.worker.name, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("nft: {e}"))?;
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), rules.as_bytes())
            .map_err(|e| format!("nft: {e}"))?;
        let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("nft: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    /// The address the faulted worker joins the gateway at.
    pub(crate) fn gateway_addr(&self, port: u16) -> String {
        format!("{GATEWAY_IP}:{port}")
    }
}

/// Runs `f` to completion on a runtime whose threads live in network namespace `ns` (the
/// caller's when `None`); child processes spawned from it inherit that namespace. A panic in
/// `f` is re-raised here.
pub(crate) fn block_on<F>(ns: Option<&Netns>, f: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let path = ns.map(Netns::path);
    let thread = std::thread::spawn(move || {
        if let Some(p) = path {
            let fd = std::fs::File::open(&p).expect("open the namespace");
            nix::sched::setns(&fd, CloneFlags::CLONE_NEWNET).expect("enter the namespace");
        }
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f);
    });
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}
