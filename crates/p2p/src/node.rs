//! The libp2p swarm task and its handle.

use std::{
    collections::{BTreeMap, HashMap},
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
    mdns, noise,
    pnet::PnetConfig,
    swarm::{behaviour::toggle::Toggle, dial_opts::DialOpts, ConnectionId, SwarmEvent},
    tcp, yamux, Multiaddr, PeerId, Swarm, Transport as _,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::{behaviour::Behaviour, key::psk};

mod throttle;

use throttle::RefusalLog;

/// Most peers remembered from mDNS at once; a LAN flooding us with announcements cannot grow
/// memory without bound.
const MAX_DISCOVERED: usize = 1024;

/// At most one full "refused an incoming connection" warning per this long; the others in the
/// same window are summed into one line.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);

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
    /// Find peers on the local network by mDNS. Multicasts on every non-loopback interface, so
    /// [`P2p::spawn`] refuses it when every listen address is loopback.
    pub mdns: bool,
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
    /// mDNS was asked for on a node that only listens on loopback, where it could find nobody
    /// and would still multicast on the host's other interfaces.
    #[error("LAN discovery needs a non-loopback listen address (e.g. /ip4/0.0.0.0/tcp/8788)")]
    MdnsOnLoopback,
    /// mDNS could not start (no usable interface, or UDP 5353 unavailable).
    #[error("cannot start LAN discovery: {0}")]
    Mdns(String),
    /// The node key file is unusable.
    #[error("node key {path}: {reason}")]
    Key {
        /// The key file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A dial failed. Nothing was established.
    #[error("cannot connect to {addr}: {reason}")]
    Dial {
        /// The address dialed.
        addr: Multiaddr,
        /// What kind of failure it was.
        kind: crate::DialKind,
        /// Why, as libp2p reported it.
        reason: String,
    },
    /// The swarm task has stopped.
    #[error("the p2p task has stopped")]
    Shutdown,
}

/// The IP address and TCP port of a multiaddr such as `/ip4/10.0.0.2/tcp/8788/p2p/…`, if it
/// names both.
pub fn socket_addr(addr: &Multiaddr) -> Option<std::net::SocketAddr> {
    use libp2p::multiaddr::Protocol;
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    Some(std::net::SocketAddr::new(ip?, port?))
}

/// Commands from handles to the swarm task.
enum Command {
    /// Dial and report the peer id on success.
    Connect { addr: Multiaddr, reply: oneshot::Sender<Result<PeerId, P2pError>> },
}

/// A running p2p node. Dropping it stops the swarm task.
pub struct P2p {
    peer_id: PeerId,
    control: libp2p_stream::Control,
    commands: mpsc::Sender<Command>,
    addrs: watch::Receiver<Vec<Multiaddr>>,
    discovered: watch::Receiver<BTreeMap<PeerId, Vec<Multiaddr>>>,
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

/// Fails when someone already listens on `addr`'s TCP port. [`P2p::spawn`] checks this itself;
/// a caller may check first to fail before slow work.
///
/// libp2p-tcp marks every listening socket `SO_REUSEPORT` and has no setting to turn that off,
/// so a second node bound to a taken port succeeds and the kernel then splits incoming
/// connections between the two: workers holding the other node's secret fail their handshake
/// at random. A plain bind (no `SO_REUSEPORT`) fails wherever anyone listens, so it is tried
/// first and released at once. Port 0 (any free port) and non-TCP addresses need no check. Two
/// nodes starting in the same instant can still both pass; that window is the time between
/// this probe and libp2p's own bind.
pub fn ensure_port_free(addr: &Multiaddr) -> Result<(), P2pError> {
    let Some(sa) = socket_addr(addr) else { return Ok(()) };
    let (ip, port) = (sa.ip(), sa.port());
    if port == 0 {
        return Ok(());
    }
    match std::net::TcpListener::bind((ip, port)) {
        Ok(_probe) => Ok(()),
        Err(e) => {
            let reason = if e.kind() == std::io::ErrorKind::AddrInUse {
                format!(
                    "TCP port {port} is already in use (another `nova serve`?). Stop that \
                     process, or give this one another p2p port, e.g. \
                     `--p2p-listen /ip4/127.0.0.1/tcp/0` for any free one"
                )
            } else {
                e.to_string()
            };
            Err(P2pError::Listen { addr: addr.clone(), reason })
        }
    }
}

fn is_loopback(addr: &Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

impl P2p {
    /// Builds the swarm, starts listening and spawns its task. Must run inside a tokio runtime.
    pub fn spawn(config: P2pConfig) -> Result<Self, P2pError> {
        if config.mdns && config.listen.iter().all(is_loopback) {
            return Err(P2pError::MdnsOnLoopback);
        }
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
        let local_id = config.key.public().to_peer_id();
        let mdns = if config.mdns {
            let m = mdns::tokio::Behaviour::new(mdns::Config::default(), local_id)
                .map_err(|e| P2pError::Mdns(e.to_string()))?;
            tracing::info!("LAN discovery (mDNS) on");
            Some(m)
        } else {
            None
        };
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(config.key.clone())
            .with_tokio()
            .with_other_transport(|_| transport)
            .map_err(|e| transport_err(&e))?
            .with_behaviour(|_| Behaviour {
                stream: libp2p_stream::Behaviour::new(),
                mdns: Toggle::from(mdns),
            })
            .map_err(|e| transport_err(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
            .build();
        for addr in &config.listen {
            ensure_port_free(addr)?;
            swarm
                .listen_on(addr.clone())
                .map_err(|e| P2pError::Listen { addr: addr.clone(), reason: e.to_string() })?;
        }
        let peer_id = *swarm.local_peer_id();
        let control = swarm.behaviour().stream.new_control();
        let (commands, command_rx) = mpsc::channel(16);
        let (addr_tx, addrs) = watch::channel(Vec::new());
        let (discovered_tx, discovered) = watch::channel(BTreeMap::new());
        let refused = Arc::new(AtomicU64::new(0));
        let event_loop = EventLoop {
            swarm,
            commands: command_rx,
            addrs: addr_tx,
            discovered: discovered_tx,
            refused: refused.clone(),
            refusal_log: RefusalLog::new(REFUSAL_LOG_INTERVAL),
            pending: HashMap::new(),
        };
        let task = tokio::spawn(event_loop.run());
        Ok(Self { peer_id, control, commands, addrs, discovered, refused, task })
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// A control for opening and accepting streams.
    pub fn control(&self) -> libp2p_stream::Control {
        self.control.clone()
    }

    /// Dials `addr` and returns the peer id that answered. `addr` may omit `/p2p/<id>` (then
    /// whoever holds the swarm secret there is accepted); when it has one, a different peer is
    /// an error. Not cancel-safe in the sense that the dial goes on if the future is dropped.
    pub async fn connect(&self, addr: Multiaddr) -> Result<PeerId, P2pError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Connect { addr, reply })
            .await
            .map_err(|_| P2pError::Shutdown)?;
        rx.await.map_err(|_| P2pError::Shutdown)?
    }

    /// Peers found by mDNS so far, with their addresses; expired ones are removed. Empty when
    /// discovery is off.
    pub fn discovered(&self) -> watch::Receiver<BTreeMap<PeerId, Vec<Multiaddr>>> {
        self.discovered.clone()
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

fn log_refusal_summary((count, over): (u64, Duration)) {
    tracing::warn!(
        count,
        "{count} more incoming connections refused in the last {} s \
         (wrong swarm secret, or not a nova node)",
        over.as_secs()
    );
}

/// The task that owns the libp2p `Swarm`.
struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    addrs: watch::Sender<Vec<Multiaddr>>,
    discovered: watch::Sender<BTreeMap<PeerId, Vec<Multiaddr>>>,
    refused: Arc<AtomicU64>,
    /// Which refusals get a log line.
    refusal_log: RefusalLog,
    /// Dials waiting for their outcome, by connection id.
    pending: HashMap<ConnectionId, (Multiaddr, oneshot::Sender<Result<PeerId, P2pError>>)>,
}

impl EventLoop {
    async fn run(mut self) {
        let mut summaries = tokio::time::interval(REFUSAL_LOG_INTERVAL);
        summaries.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(command) = self.commands.recv() => self.on_command(command),
                event = self.swarm.select_next_some() => self.on_event(event),
                _ = summaries.tick() => {
                    if let Some(summary) = self.refusal_log.tick(std::time::Instant::now()) {
                        log_refusal_summary(summary);
                    }
                }
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Connect { addr, reply } => {
                let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.pending.insert(id, (addr, reply));
                    }
                    Err(e) => {
                        let kind = crate::dial::classify(&e);
                        let _ =
                            reply.send(Err(P2pError::Dial { addr, kind, reason: e.to_string() }));
                    }
                }
            }
        }
    }

    fn on_event(&mut self, event: SwarmEvent<crate::behaviour::BehaviourEvent>) {
        use crate::behaviour::BehaviourEvent;
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                self.addrs.send_modify(|a| a.push(address));
            }
            SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                let verdict = self.refusal_log.refused(std::time::Instant::now());
                if let Some(summary) = verdict.summary {
                    log_refusal_summary(summary);
                }
                if verdict.log {
                    tracing::warn!(from = %send_back_addr, error = %error,
                        "refused an incoming connection: wrong swarm secret, or not a nova node \
                         (further refusals are summed up once a minute)");
                }
            }
            SwarmEvent::OutgoingConnectionError { connection_id, peer_id, error } => {
                if let Some((addr, reply)) = self.pending.remove(&connection_id) {
                    let kind = crate::dial::classify(&error);
                    let _ =
                        reply.send(Err(P2pError::Dial { addr, kind, reason: error.to_string() }));
                }
                // The worker's join path says what this means and what to do.
                tracing::debug!(peer = ?peer_id, error = %error, "cannot connect");
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, connection_id, .. } => {
                if let Some((addr, reply)) = self.pending.remove(&connection_id) {
                    // A `/p2p/<id>` in the address is a promise about who answers; libp2p only
                    // checks it when the dial names the peer, which unknown-peer dials do not.
                    let expected = addr.iter().find_map(|p| match p {
                        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
                        _ => None,
                    });
                    let result = match expected {
                        Some(id) if id != peer_id => {
                            let _ = self.swarm.disconnect_peer_id(peer_id);
                            Err(P2pError::Dial {
                                addr,
                                kind: crate::DialKind::WrongPeer,
                                reason: format!("it is peer {peer_id}, not {id}"),
                            })
                        }
                        _ => Ok(peer_id),
                    };
                    let _ = reply.send(result);
                }
                tracing::info!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
            }
            SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                tracing::info!(peer = %peer_id, cause = ?cause, "disconnected");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                let local = *self.swarm.local_peer_id();
                self.discovered.send_if_modified(|known| {
                    let mut changed = false;
                    for (peer, addr) in found {
                        if peer == local
                            || (known.len() >= MAX_DISCOVERED && !known.contains_key(&peer))
                        {
                            continue;
                        }
                        let addrs = known.entry(peer).or_default();
                        if !addrs.contains(&addr) && addrs.len() < 16 {
                            tracing::debug!(peer = %peer, %addr, "found on the LAN");
                            addrs.push(addr);
                            changed = true;
                        }
                    }
                    changed
                });
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Expired(gone))) => {
                self.discovered.send_if_modified(|known| {
                    let mut changed = false;
                    for (peer, addr) in gone {
                        if let Some(addrs) = known.get_mut(&peer) {
                            addrs.retain(|a| *a != addr);
                            if addrs.is_empty() {
                                known.remove(&peer);
                            }
                            changed = true;
                        }
                    }
                    changed
                });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listen: Multiaddr, secret: &str) -> P2pConfig {
        P2pConfig {
            key: Keypair::generate_ed25519(),
            secret: secret.into(),
            listen: vec![listen],
            idle_timeout: Duration::from_secs(60),
            mdns: false,
        }
    }

    #[tokio::test]
    async fn a_taken_port_fails_at_start_with_a_useful_message(
    ) -> Result<(), Box<dyn std::error::Error>> {
        // A fixed port, as `nova serve` uses by default: found free, then given to both nodes.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse()?;
        let first = P2p::spawn(config(addr.clone(), "one"))?;
        let listening =
            tokio::time::timeout(Duration::from_secs(10), first.listen_addrs()).await??;
        assert!(listening[0].to_string().starts_with(&addr.to_string()));

        let second = P2p::spawn(config(addr.clone(), "two"));
        let Err(err @ P2pError::Listen { .. }) = second else {
            panic!("a second node on {addr} must not start: {second:?}");
        };
        let msg = err.to_string();
        assert!(msg.contains(&addr.to_string()), "names the address: {msg}");
        assert!(msg.contains("already in use"), "says why: {msg}");
        assert!(msg.contains("/ip4/127.0.0.1/tcp/0"), "says what to do: {msg}");
        drop(first);
        Ok(())
    }

    #[tokio::test]
    async fn port_zero_and_a_free_port_need_no_probe() -> Result<(), Box<dyn std::error::Error>> {
        ensure_port_free(&"/ip4/127.0.0.1/tcp/0".parse()?)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        ensure_port_free(&format!("/ip4/127.0.0.1/tcp/{port}").parse()?)?;
        ensure_port_free(&"/memory/1".parse()?)?;
        Ok(())
    }
}
