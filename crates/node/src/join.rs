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
    pub(crate) async fn open(&mut self) -> Result<(PeerId, Stream), String> {
        match self.target.clone() {
            JoinTarget::Addr(addr) => {
                let peer = self.p2p.connect(addr.clone()).await.map_err(|e| e.to_string())?;
                let stream = self.open_to(peer).await?;
                Ok((peer, stream))
            }
            JoinTarget::Lan => self.find_on_lan().await,
        }
    }

    async fn open_to(&mut self, peer: PeerId) -> Result<Stream, String> {
        match tokio::time::timeout(OPEN_TIMEOUT, self.control.open_stream(peer, MEMBERSHIP)).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(nova_p2p::OpenStreamError::UnsupportedProtocol(_))) => {
                self.not_gateways.insert(peer);
                Err(format!("{peer} is not a gateway (it does not accept workers)"))
            }
            Ok(Err(e)) => Err(format!("{peer}: {e}")),
            Err(_) => Err(format!("{peer} did not answer within {OPEN_TIMEOUT:?}")),
        }
    }

    async fn find_on_lan(&mut self) -> Result<(PeerId, Stream), String> {
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
