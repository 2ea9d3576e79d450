//! Worker side of a pooled model: hold some of its layers for the gateway (the head).
//!
//! The head opens one [`nova_p2p::GGML_RPC`] stream per ggml-rpc connection. Each accepted
//! stream gets a process of its own (`nova rpc-shard`) whose standard input is one end of a
//! socketpair; [`nova_rpc::shard`] carries frames between the stream and the other end,
//! checking each one first. Nothing listens on a port, so no other local process (on Android,
//! any app) can reach the ggml-rpc server, and only the gateway this worker joined is served.

use std::{ffi::OsString, path::PathBuf, process::Stdio, sync::Arc};

use futures_util::StreamExt as _;
use nova_p2p::{IncomingStreams, PeerId};
use tokio::sync::{watch, Semaphore};
use tokio_util::compat::FuturesAsyncReadCompatExt as _;

/// How this worker holds layers of pooled models.
#[derive(Debug, Clone)]
pub struct ShardHostConfig {
    /// The program serving one session on its standard input (`nova rpc-shard`) and its
    /// arguments.
    pub program: PathBuf,
    /// Arguments before `--threads`.
    pub args: Vec<OsString>,
    /// Threads each session computes with.
    pub threads: u32,
    /// Most memory offered to pooled models, in MiB (`--max-ram`); what is free caps it too.
    pub max_ram_mb: u64,
    /// Bounds on the frames a head may send.
    pub limits: nova_rpc::wire::FrameLimits,
}

/// Sessions at once: a load opens a few short ones, a loaded model keeps one; more than this
/// is not a head nova runs.
const MAX_SESSIONS: usize = 8;

impl ShardHostConfig {
    /// What this worker offers now: `--max-ram`, at most half of what is free (its own model
    /// and the rest of the device need the remainder).
    pub fn offer_mb(&self, free_ram_mb: Option<u64>) -> u64 {
        let free = free_ram_mb.map_or(self.max_ram_mb, |f| f / 2);
        self.max_ram_mb.min(free)
    }
}

/// Serves ggml-rpc sessions from `gateway` (whoever this worker has joined) until `incoming`
/// ends. Streams from any other peer are dropped unread.
pub(crate) async fn serve(
    mut incoming: IncomingStreams,
    gateway: watch::Receiver<Option<PeerId>>,
    config: Arc<ShardHostConfig>,
) {
    let sessions = Arc::new(Semaphore::new(MAX_SESSIONS));
    while let Some((peer, stream)) = incoming.next().await {
        if *gateway.borrow() != Some(peer) {
            tracing::warn!(%peer, "a ggml-rpc stream from a peer that is not our gateway; refused");
            continue;
        }
        let Ok(permit) = sessions.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many ggml-rpc sessions at once; refused");
            continue;
        };
        let config = config.clone();
        tokio::spawn(async move {
            if let Err(e) = session(stream, &config).await {
                tracing::warn!(error = %e, "a shard session ended with an error");
            }
            drop(permit);
        });
    }
}

async fn session(stream: nova_p2p::Stream, config: &ShardHostConfig) -> Result<(), String> {
    let (ours, theirs) =
        std::os::unix::net::UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    // The server gets a clean environment: no swarm secret, no API token, no paths of ours.
    let mut child = tokio::process::Command::new(&config.program)
        .args(&config.args)
        .arg("--threads")
        .arg(config.threads.to_string())
        .env_clear()
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", config.program.display()))?;
    ours.set_nonblocking(true).map_err(|e| e.to_string())?;
    let ours = tokio::net::UnixStream::from_std(ours).map_err(|e| e.to_string())?;
    let budget = config.max_ram_mb.saturating_mul(1 << 20);
    let outcome = nova_rpc::shard(stream.compat(), ours, config.limits, budget).await;
    // The session is over either way: its buffers go with the process.
    let _ = child.kill().await;
    outcome.map_err(|e| e.to_string())
}
