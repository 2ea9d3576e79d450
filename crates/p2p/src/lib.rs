//! The swarm's wire.
//!
//! Every link is TCP, then a private-network handshake keyed by the swarm secret (libp2p
//! `pnet`: a node without the secret cannot complete a connection, let alone speak a protocol),
//! then noise (authenticated encryption; the peer id is the node's ed25519 key) and yamux.
//! On top, two stream protocols carry length-prefixed JSON [`frame`]s:
//! - [`MEMBERSHIP`]: a worker opens one long-lived stream to the gateway and sends its
//!   [`wire::Hello`] and then a [`wire::Heartbeat`] every interval.
//! - [`TASK`]: the gateway opens one stream per task, sends the request and reads
//!   [`wire::TaskEvent`]s back; closing the stream cancels the task.
//! - [`BUNDLE`]: a worker fetches a signed update bundle from the gateway ([`bundle`]). The
//!   gateway announces bundles with [`wire::MembershipReply`] frames on the membership stream.
//! - [`GGML_RPC`]: a pooled model's head (the gateway) opens one stream per ggml-rpc
//!   connection to a worker holding some of its layers; only the worker's gateway is served.
//! - [`KNOWLEDGE`]: the gateway asks a node that shares its documents for passages: one
//!   stream per query, a [`wire::KnowledgeRequest`] out and one [`wire::KnowledgeFrame`] back.
//!   Only nodes started with `--share-knowledge` accept the protocol at all.
//! - [`EMBED`]: the gateway asks a worker for embeddings: one stream per request, a
//!   [`wire::EmbedRequest`] out and [`wire::EmbedFrame`]s back (a vector per input, then the
//!   end). A worker older than the protocol refuses it at negotiation, which the gateway
//!   reports at once.
//!
//! Discovery: with [`P2pConfig::mdns`] (only on nodes bound to a LAN interface) peers find each
//! other by mDNS; otherwise a worker dials the address it was given with [`P2p::connect`].
//!
//! Topology: [`P2p::spawn`] moves the libp2p `Swarm` into its own task (the only owner), which
//! reports listen addresses and refused connections; everything else goes through cloneable
//! `libp2p_stream::Control`s.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod behaviour;
pub mod bundle;
mod dial;
pub mod frame;
mod key;
mod node;
pub mod wire;

pub use dial::DialKind;
pub use key::load_or_create_key;
pub use libp2p::{identity::Keypair, multiaddr::Protocol, Multiaddr, PeerId, Stream};
pub use libp2p_stream::{Control, IncomingStreams, OpenStreamError};
pub use node::{ensure_port_free, socket_addr, P2p, P2pConfig, P2pError};

/// Protocol of the membership stream.
pub const MEMBERSHIP: libp2p::StreamProtocol = libp2p::StreamProtocol::new("/nova/membership/1");
/// Protocol of task streams.
pub const TASK: libp2p::StreamProtocol = libp2p::StreamProtocol::new("/nova/task/1");
/// Protocol of retrieval queries to nodes that share documents.
pub const KNOWLEDGE: libp2p::StreamProtocol = libp2p::StreamProtocol::new("/nova/knowledge/1");
/// Protocol of ggml-rpc sessions from a pooled model's head to a shard: llama.cpp's RPC
/// protocol (major version 7) carried unchanged, so only swarm members reach a shard.
pub const GGML_RPC: libp2p::StreamProtocol = libp2p::StreamProtocol::new("/nova/ggml-rpc/7");
/// Protocol of embedding requests from the gateway to a worker.
pub const EMBED: libp2p::StreamProtocol = libp2p::StreamProtocol::new("/nova/embed/1");
/// Protocol of update bundle downloads.
pub const BUNDLE: libp2p::StreamProtocol = libp2p::StreamProtocol::new("/nova/bundle/1");
