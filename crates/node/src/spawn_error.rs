//! Why a node could not start.

/// Why [`crate::GatewayNode::spawn`] or [`crate::WorkerNode::spawn`] failed. Nothing keeps
/// running after an error: whatever had started is stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// The registry (SQLite) could not be opened.
    #[error("cannot open the registry {path}: {reason}")]
    Store {
        /// The database file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// The HTTP address is taken or not ours.
    #[error("cannot listen on {addr} ({reason}); is another nova running? try --bind 127.0.0.1:0")]
    HttpListen {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The system's reason.
        reason: String,
    },
    /// The p2p side could not start or listen.
    #[error("p2p: {0}")]
    P2p(String),
    /// The engine could not be built or loaded.
    #[error("cannot load the engine: {0}")]
    Engine(String),
    /// The engine loaded but did not answer the speed probe.
    #[error("the engine did not answer its speed probe: {0}")]
    Probe(String),
}
