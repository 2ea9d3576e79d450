//! Why a dial failed, in the terms a person joining a swarm can act on. libp2p reports a
//! wrong swarm secret, a closed port and a worker sharing the gateway's key as nested transport
//! errors; the join path turns these kinds into advice.

use std::error::Error as _;

use libp2p::{swarm::DialError, TransportError};

/// The kind of a failed dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DialKind {
    /// Nothing accepted the TCP connection.
    Refused,
    /// A connection was made but the swarm handshake failed: another swarm secret, or not a
    /// nova p2p port at all.
    Handshake,
    /// The handshake did not finish in time.
    Timeout,
    /// The peer that answered has this node's own key.
    LocalPeer,
    /// The peer that answered is not the one the address names.
    WrongPeer,
    /// Anything else.
    Other,
}

/// Classifies a libp2p dial error.
pub(crate) fn classify(e: &DialError) -> DialKind {
    match e {
        DialError::LocalPeerId { .. } => DialKind::LocalPeer,
        DialError::WrongPeerId { .. } => DialKind::WrongPeer,
        DialError::Transport(errors) => {
            // Several addresses may have been tried: the most telling failure wins.
            let kinds: Vec<DialKind> = errors.iter().map(|(_, e)| transport(e)).collect();
            [DialKind::Handshake, DialKind::Timeout, DialKind::Refused]
                .into_iter()
                .find(|k| kinds.contains(k))
                .unwrap_or(DialKind::Other)
        }
        _ => DialKind::Other,
    }
}

fn transport(e: &TransportError<std::io::Error>) -> DialKind {
    let TransportError::Other(io) = e else { return DialKind::Other };
    // The io error wraps the upgrade's error; walk the chain for what it says.
    let mut text = io.to_string();
    let mut source = io.source();
    let mut refused = io.kind() == std::io::ErrorKind::ConnectionRefused;
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = s.source();
    }
    if refused || text.contains("Connection refused") {
        DialKind::Refused
    } else if text.contains("Handshake failed") || text.contains("Connection reset") {
        DialKind::Handshake
    } else if text.contains("Timeout") || text.contains("timed out") {
        DialKind::Timeout
    } else {
        DialKind::Other
    }
}
