//! The composed libp2p behaviour: stream protocols, plus mDNS when discovery is on.

use libp2p::{mdns, swarm::behaviour::toggle::Toggle, swarm::NetworkBehaviour};

/// Streams carry every protocol; mDNS is toggled off unless the node is on a LAN.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) stream: libp2p_stream::Behaviour,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
}
