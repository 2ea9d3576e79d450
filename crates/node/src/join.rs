//! Worker side: finding the gateway and opening the membership stream to it.

use std::{collections::HashSet, time::Duration};

use nova_p2p::{Control, Multiaddr, P2p, PeerId, Stream, MEMBERSHIP};

/// How long one attempt to open a membership stream may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a LAN worker re-probes peers it found when none has answered yet.
const REPROBE: Duration = Duration::from_secs(5);

/// Where a worker finds its gateway.
#[derive(Debug, Clone)]
pub enum JoinTarget {
    /// A known address. With `/p2p/<id>` only that peer is accepted; without, whoever answers
    /// there with the swarm secret.
    Addr(Multiaddr),
    /// A peer found by mDNS that accepts the membership protocol. Workers find each other too;
    /// they refuse the protocol and are remembered as not-gateways.
    Lan,
}

/// What a worker's terminal hears of its gateway (`nova worker` prints these): the log file
/// has the same at info level, but a person watching the terminal should see that the worker
/// joined, lost the gateway and came back.
#[derive(Debug, Clone)]
pub enum JoinEvent {
    /// Joined `gateway`; `away` is how long it was without one when this is a rejoin.
    Joined {
        /// The gateway's peer id.
        gateway: PeerId,
        /// Time since the gateway was lost, for a rejoin.
        away: Option<Duration>,
    },
    /// The gateway was lost; the worker rejoins.
    Lost {
        /// Why.
        why: String,
    },
    /// A join attempt failed (told once per kind of failure, not at every retry).
    Failed(JoinFailure),
}

/// Why a join attempt failed, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinFailure {
    /// The kind of failure.
    pub kind: FailKind,
    /// The whole sentence: what happened and what to do.
    pub message: String,
}

/// The kinds of [`JoinFailure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailKind {
    /// Nothing listens at the address.
    NothingListening,
    /// The address is an HTTP server (the gateway's API port, likely), not its p2p port.
    HttpPort,
    /// The swarm handshake failed: another secret, or another swarm's gateway.
    WrongSecret,
    /// The gateway has this worker's own node key: they share a data dir. Retrying cannot help.
    SameNode,
    /// Someone else answers at the address named with `/p2p/<id>`.
    WrongPeer,
    /// The peer does not accept workers.
    NotAGateway,
    /// No answer in time.
    Timeout,
    /// Anything else.
    Other,
}

impl std::fmt::Display for JoinFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl JoinFailure {
    fn new(kind: FailKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    /// Whether trying again can ever help.
    pub fn is_fatal(&self) -> bool {
        self.kind == FailKind::SameNode
    }
}

/// What the p2p layer said about a failed dial of `addr`, in words a person can act on.
async fn dial_failure(addr: &Multiaddr, e: nova_p2p::P2pError) -> JoinFailure {
    use nova_p2p::DialKind;
    let nova_p2p::P2pError::Dial { kind, reason, .. } = &e else {
        return JoinFailure::new(FailKind::Other, e.to_string());
    };
    const P2P_PORT: &str =
        "the p2p port `nova serve` printed as `p2p listening on …` (8788 by default)";
    match kind {
        DialKind::Refused => JoinFailure::new(
            FailKind::NothingListening,
            format!("nothing listens at {addr}: start `nova serve` there, or check the host and that the port is {P2P_PORT}"),
        ),
        DialKind::Handshake | DialKind::Timeout if answers_http(addr).await => JoinFailure::new(
            FailKind::HttpPort,
            format!("{addr} answers HTTP: that is the gateway's API port, but --join takes {P2P_PORT}"),
        ),
        DialKind::Handshake => JoinFailure::new(
            FailKind::WrongSecret,
            format!("the swarm handshake with {addr} failed: the swarm secret differs (a wrong secret, or the gateway of another swarm); use the secret file `nova serve` named (<its data dir>/swarm-secret)"),
        ),
        DialKind::LocalPeer => JoinFailure::new(
            FailKind::SameNode,
            format!("the gateway at {addr} has this worker's own node key, so the two share a data dir; give the worker its own, e.g. `nova worker --data-dir ~/.local/share/nova-worker …` (or NOVA_HOME)"),
        ),
        DialKind::WrongPeer => JoinFailure::new(
            FailKind::WrongPeer,
            format!("the node at {addr} is not the gateway the address names ({reason}): another swarm's gateway, or the gateway's data dir changed; use the address `nova serve` prints now"),
        ),
        DialKind::Timeout => JoinFailure::new(
            FailKind::Timeout,
            format!("{addr} did not finish the swarm handshake in time ({reason})"),
        ),
        _ => JoinFailure::new(FailKind::Other, format!("cannot connect to {addr}: {reason}")),
    }
}

/// Whether an HTTP server answers at `addr` (an ip and tcp port): a plain request, 2 s to
/// connect and 2 s for the first bytes of the reply.
async fn answers_http(addr: &Multiaddr) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let Some(sa) = nova_p2p::socket_addr(addr) else { return false };
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(sa).await.ok()?;
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.ok()?;
        let mut head = [0u8; 5];
        s.read_exact(&mut head).await.ok()?;
        Some(&head == b"HTTP/")
    };
    tokio::time::timeout(Duration::from_secs(4), probe).await.ok().flatten().unwrap_or(false)
}

/// Opens membership streams to the gateway, one per (re)join.
pub(crate) struct Finder<'a> {
    p2p: &'a P2p,
    control: Control,
    target: JoinTarget,
    not_gateways: HashSet<PeerId>,
}

impl<'a> Finder<'a> {
    pub(crate) fn new(p2p: &'a P2p, target: JoinTarget) -> Self {
        Self { p2p, control: p2p.control(), target, not_gateways: HashSet::new() }
    }

    /// One join attempt: the gateway's id and a fresh membership stream to it. A LAN worker
    /// waits here until some peer accepts. Cancel-safe.
    pub(crate) async fn open(&mut self) -> Result<(PeerId, Stream), JoinFailure> {
        match self.target.clone() {
            JoinTarget::Addr(addr) => {
                let peer = match self.p2p.connect(addr.clone()).await {
                    Ok(p) => p,
                    Err(e) => return Err(dial_failure(&addr, e).await),
                };
                let stream = self.open_to(peer).await?;
                Ok((peer, stream))
            }
            JoinTarget::Lan => self.find_on_lan().await,
        }
    }

    async fn open_to(&mut self, peer: PeerId) -> Result<Stream, JoinFailure> {
        match tokio::time::timeout(OPEN_TIMEOUT, self.control.open_stream(peer, MEMBERSHIP)).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(nova_p2p::OpenStreamError::UnsupportedProtocol(_))) => {
                self.not_gateways.insert(peer);
                Err(JoinFailure::new(
                    FailKind::NotAGateway,
                    format!("{peer} is not a gateway (it does not accept workers): join the address `nova serve` printed"),
                ))
            }
            Ok(Err(e)) => Err(JoinFailure::new(FailKind::Other, format!("{peer}: {e}"))),
            Err(_) => Err(JoinFailure::new(
                FailKind::Timeout,
                format!("{peer} did not answer within {OPEN_TIMEOUT:?}"),
            )),
        }
    }

    async fn find_on_lan(&mut self) -> Result<(PeerId, Stream), JoinFailure> {
        let mut found = self.p2p.discovered();
        let mut said = false;
        loop {
            let candidates: Vec<PeerId> = found
                .borrow_and_update()
                .keys()
                .filter(|p| !self.not_gateways.contains(p))
                .copied()
                .collect();
            if candidates.is_empty() && !said {
                tracing::info!("looking for a gateway on the LAN (mDNS)");
                said = true;
            }
            for peer in candidates {
                match self.open_to(peer).await {
                    Ok(stream) => return Ok((peer, stream)),
                    Err(e) => tracing::debug!(error = %e, "LAN peer is not our gateway"),
                }
            }
            // New announcements wake us at once; a gateway that restarted under the same id
            // shows up only on re-probe.
            let _ = tokio::time::timeout(REPROBE, found.changed()).await;
        }
    }
}
