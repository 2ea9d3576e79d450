//! Documents a node shares with the swarm: the port a local index implements, and the node's
//! side of the retrieval protocol.

use std::{fmt, sync::Arc, time::Duration};

use futures_util::StreamExt as _;
use nova_p2p::{
    frame,
    wire::{KnowledgeFrame, KnowledgeRequest},
    PeerId,
};
use nova_proto::knowledge::{KnowledgeQuery, KnowledgeReply, KnowledgeSummary, MAX_HITS};
use tokio::sync::{watch, Semaphore};

/// A searchable collection of this node's documents (its `nova rag` index).
pub trait KnowledgeBase: Send + Sync + fmt::Debug + 'static {
    /// The best `query.k` passages and the statistics to score them across nodes. Blocking
    /// (disk): callers run it on a blocking thread.
    fn search(&self, query: &KnowledgeQuery) -> Result<KnowledgeReply, String>;
    /// What it holds, for heartbeats. Cheap: called every heartbeat.
    fn summary(&self) -> KnowledgeSummary;
}

/// Searches running at once on a node; more queries are refused (the gateway skips the node).
const MAX_SEARCHES: usize = 4;
/// Longest a gateway may take to send its query once it opened the stream.
const QUERY_READ: Duration = Duration::from_secs(5);
/// Longest one search may take before the node gives up on it.
const SEARCH_LIMIT: Duration = Duration::from_secs(10);

/// Answers retrieval queries arriving on `incoming`, from the peer `gateway` names only, out of
/// `kb`. Every passage sent is logged here, on the node that owns it: the only record of what
/// left the device. Runs until `incoming` ends.
pub(crate) async fn serve_queries(
    mut incoming: nova_p2p::IncomingStreams,
    gateway: watch::Receiver<Option<PeerId>>,
    kb: Arc<dyn KnowledgeBase>,
) {
    let searches = Arc::new(Semaphore::new(MAX_SEARCHES));
    while let Some((peer, stream)) = incoming.next().await {
        if *gateway.borrow() != Some(peer) {
            tracing::warn!(peer = %peer, "retrieval query from a peer that is not our gateway; refused");
            continue;
        }
        let (kb, searches) = (kb.clone(), searches.clone());
        tokio::spawn(async move {
            let permit = searches.try_acquire_owned();
            answer(stream, kb, permit.ok()).await
        });
    }
}

async fn answer(
    mut stream: nova_p2p::Stream,
    kb: Arc<dyn KnowledgeBase>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    let query =
        match tokio::time::timeout(QUERY_READ, frame::read::<_, KnowledgeRequest>(&mut stream))
            .await
        {
            Ok(Ok(q)) => q,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "bad retrieval query; dropped");
                return;
            }
            Err(_) => return,
        };
    let reply = match permit {
        None => KnowledgeFrame::Error { message: format!("busy: {MAX_SEARCHES} searches running") },
        Some(_permit) => {
            let k = (query.k as usize).min(MAX_HITS);
            let q = KnowledgeQuery { k: k as u32, ..query };
            let search = tokio::task::spawn_blocking(move || {
                let r = kb.search(&q);
                (q, r)
            });
            match tokio::time::timeout(SEARCH_LIMIT, search).await {
                Ok(Ok((q, Ok(reply)))) => {
                    let reply = reply.bounded(k);
                    let sent: Vec<String> =
                        reply.hits.iter().map(|h| format!("{}#{}", h.path, h.chunk)).collect();
                    tracing::info!(
                        target: "nova::knowledge",
                        query = %q.query.chars().take(200).collect::<String>(),
                        passages = ?sent,
                        "passages sent to the gateway"
                    );
                    KnowledgeFrame::Reply(reply)
                }
                Ok(Ok((_, Err(e)))) => KnowledgeFrame::Error { message: e },
                Ok(Err(e)) => KnowledgeFrame::Error { message: format!("search failed: {e}") },
                Err(_) => KnowledgeFrame::Error {
                    message: format!("search took over {} s", SEARCH_LIMIT.as_secs()),
                },
            }
        }
    };
    if let Err(e) = frame::write(&mut stream, &reply).await {
        tracing::debug!(error = %e, "retrieval reply not delivered");
    }
}

/// Asks `peer` for passages over a [`nova_p2p::KNOWLEDGE`] stream. The caller bounds the
/// time; the reply is held to `query.k` hits and the wire limits.
pub(crate) async fn query_peer(
    mut control: nova_p2p::Control,
    peer: PeerId,
    query: KnowledgeQuery,
) -> Result<KnowledgeReply, String> {
    let mut stream = control
        .open_stream(peer, nova_p2p::KNOWLEDGE)
        .await
        .map_err(|e| format!("cannot open a retrieval stream: {e}"))?;
    frame::write(&mut stream, &query).await.map_err(|e| e.to_string())?;
    match frame::read::<_, KnowledgeFrame>(&mut stream).await.map_err(|e| e.to_string())? {
        KnowledgeFrame::Reply(r) => Ok(r.bounded(query.k as usize)),
        KnowledgeFrame::Error { message } => Err(message),
    }
}
