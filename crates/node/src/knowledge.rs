//! Documents a node shares with the swarm: the port a local index implements, and the node's
//! side of the retrieval protocol.

use std::fmt;

use nova_proto::knowledge::{KnowledgeQuery, KnowledgeReply, KnowledgeSummary};

/// A searchable collection of this node's documents (its `nova rag` index).
pub trait KnowledgeBase: Send + Sync + fmt::Debug + 'static {
    /// The best `query.k` passages and the statistics to score them across nodes. Blocking
    /// (disk): callers run it on a blocking thread.
    fn search(&self, query: &KnowledgeQuery) -> Result<KnowledgeReply, String>;
    /// What it holds, for heartbeats. Cheap: called every heartbeat.
    fn summary(&self) -> KnowledgeSummary;
}
