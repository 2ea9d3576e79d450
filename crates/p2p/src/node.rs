//! The libp2p swarm task and its handle.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use futures_util::StreamExt as _;
use libp2p::{
    core::upgrade::Version,
    identity::Keypair,
    noise,
    pnet::{PnetConfig, PreSharedKey},
    swarm::SwarmEvent,
    tcp, yamux, Multiaddr, PeerId, Transport as _,
};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

/// Settings of a node's p2p side.
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// The node's identity.
    pub key: Keypair,
    /// The swarm secret; only nodes with the same secret can connect.
    pub secret: String,
    /// Addresses to listen on (`/ip4/127.0.0.1/tcp/0` picks a free port).
    pub listen: Vec<Multiaddr>,
    /// How long an unused connection stays open.
    pub idle_timeout: Duration,
}

/// Why the p2p side could not start or act.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum P2pError {
    /// The transport could not be built.
    #[error("cannot build the transport: {0}")]
    Transport(String),
    /// An address could not be listened on.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// The node key file is unusable.
    #[error("node key {path}: {reason}")]
    Key {
        /// The key file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The swarm task has stopped.
    #[error("the p2p task has stopped")]
    Shutdown,
}

/// The pnet key: sha256 of a domain tag and the secret, so the raw secret never goes on the wire.
fn psk(secret: &str) -> PreSharedKey {
    let mut h = Sha256::new();
    h.update(b"nova-swarm/pnet/1:");
    h.update(secret.as_bytes());
    PreSharedKey::new(h.finalize().into())
}

/// Loads the node's ed25519 identity from `path`, creating it (mode 0600) on first start.
pub fn load_or_create_key(path: &Path) -> Result<Keypair, P2pError> {
    let err = |reason: String| P2pError::Key { path: path.display().to_string(), reason };
    match std::fs::read(path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes)
            .map_err(|e| err(format!("corrupt ({e}); delete it to get a new identity"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
            let key = Keypair::generate_ed25519();
            let bytes = key.to_protobuf_encoding().map_err(|e| err(e.to_string()))?;
            let dir = path.parent().ok_or_else(|| err("no parent directory".into()))?;
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
            let tmp = dir.join(format!(".node-key-{}", std::process::id()));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| err(e.to_string()))?;
            f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(|e| err(e.to_string()))?;
            std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))?;
            Ok(key)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

/// A running p2p node. Dropping it stops the swarm task.
pub struct P2p {
    peer_id: PeerId,
    control: libp2p_stream::Control,
    dials: mpsc::Sender<Multiaddr>,
    addrs: watch::Receiver<Vec<Multiaddr>>,
    refused: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for P2p {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for P2p {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2p").field("peer_id", &self.peer_id).finish_non_exhaustive()
    }
}

impl P2p {
    /// Builds the swarm, starts listening and spawns its task. Must run inside a tokio runtime.
    pub fn spawn(config: P2pConfig) -> Result<Self, P2pError> {
        let psk = psk(&config.secret);
        let transport_err = |e: &dyn std::fmt::Display| P2pError::Transport(e.to_string());
        let noise = noise::Config::new(&config.key).map_err(|e| transport_err(&e))?;
        // TCP, then the swarm-key handshake (a peer without the secret fails here), then noise
        // and yamux. The timeout bounds the whole upgrade.
        let transport = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
            .and_then(move |socket, _| PnetConfig::new(psk).handshake(socket))
            .upgrade(Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux::Config::default())
            .timeout(Duration::from_secs(10));
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(config.key.clone())
            .with_tokio()
            .with_other_transport(|_| transport)
            .map_err(|e| transport_err(&e))?
            .with_behaviour(|_| libp2p_stream::Behaviour::new())
            .map_err(|e| transport_err(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
            .build();
        for addr in &config.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| P2pError::Listen { addr: addr.clone(), reason: e.to_string() })?;
        }
        let peer_id = *swarm.local_peer_id();
        let control = swarm.behaviour().new_control();
        let (dials, mut dial_rx) = mpsc::channel::<Multiaddr>(16);
        let (addr_tx, addrs) = watch::channel(Vec::new());
        let refused = Arc::new(AtomicU64::new(0));
        let refused_in_task = refused.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(addr) = dial_rx.recv() => {
                        if let Err(e) = swarm.dial(addr.clone()) {
                            tracing::warn!(%addr, error = %e, "cannot dial");
                        }
                    }
                    event = swarm.select_next_some() => match event {
                        SwarmEvent::NewListenAddr { address, .. } => {
                            addr_tx.send_modify(|a| a.push(address));
                        }
                        SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                            refused_in_task.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(from = %send_back_addr, error = %error,
                                "refused an incoming connection: wrong swarm secret, or not a nova node");
                        }
                        SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                            tracing::warn!(peer = ?peer_id, error = %error,
                                "cannot connect: check the address, that the gateway runs, and that both use the same swarm secret");
                        }
                        SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                            tracing::info!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
                        }
                        SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                            tracing::info!(peer = %peer_id, cause = ?cause, "disconnected");
                        }
                        _ => {}
                    },
                }
            }
        });
        Ok(Self { peer_id, control, dials, addrs, refused, task })
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// A control for opening and accepting streams.
    pub fn control(&self) -> libp2p_stream::Control {
        self.control.clone()
    }

    /// Asks the swarm to dial `addr` (which should end in `/p2p/<peer id>`).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), P2pError> {
        self.dials.send(addr).await.map_err(|_| P2pError::Shutdown)
    }

    /// Connections refused so far (wrong secret or garbage), as a live counter.
    pub fn refused_counter(&self) -> Arc<AtomicU64> {
        self.refused.clone()
    }

    /// Waits until the node listens somewhere and returns its addresses (with `/p2p/<id>`).
    /// Cancel-safe.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, P2pError> {
        let mut rx = self.addrs.clone();
        let addrs = rx.wait_for(|a| !a.is_empty()).await.map_err(|_| P2pError::Shutdown)?;
        Ok(addrs
            .iter()
            .map(|a| a.clone().with(libp2p::multiaddr::Protocol::P2p(self.peer_id)))
            .collect())
    }
}
