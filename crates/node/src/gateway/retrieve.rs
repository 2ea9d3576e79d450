//! Federated retrieval for grounded answers: ask every node that shares documents (and the
//! gateway's own index) at once, wait for each at most the deadline, and merge what came by
//! BM25 over the answering nodes' summed statistics (`nova_proto::knowledge::merge`).
//!
//! A node that is slow, gone or broken costs at most the deadline and is listed in the trace
//! as skipped; it never delays the answer beyond that.

use std::{sync::Arc, time::Instant};

use futures_util::future::{join_all, BoxFuture};
use nova_api::{InferError, Job, JobResult, Retrieval, Source};
use nova_proto::{
    knowledge::{merge, truncate_utf8, KnowledgeQuery, KnowledgeReply, RankedHit, MAX_QUERY_BYTES},
    Passage, Prompt, Role,
};

use super::{lock, Inner};

/// Passages scoring below this share of the best one are dropped: a small model given a
/// passage that merely shares a word with the question tends to answer from it (seen on
/// SmolLM2-135M, which named a look-alike controller's maintainer from the third passage).
const MIN_SCORE_SHARE: f64 = 0.35;

/// Most bytes of why a node was skipped: its own error message comes from the peer.
const MAX_SKIP_REASON_BYTES: usize = 200;

/// `name: why` for the trace's `skipped`, with `why` cut to [`MAX_SKIP_REASON_BYTES`] (names
/// are bounded at membership).
fn skipped(name: &str, why: &str) -> String {
    let mut why = why.to_string();
    truncate_utf8(&mut why, MAX_SKIP_REASON_BYTES);
    format!("{name}: {why}")
}

/// What retrieval found for one job.
pub(crate) struct Grounding {
    hits: Vec<RankedHit>,
    trace: Retrieval,
}

impl Grounding {
    /// Fills a finished answer's sources (the passages its model had room for, which are the
    /// first `context_used` of those sent) and its trace.
    pub(crate) fn annotate(self, r: &mut JobResult) {
        let used = (r.usage.context_used as usize).min(self.hits.len());
        r.sources = self
            .hits
            .into_iter()
            .take(used)
            .enumerate()
            .map(|(i, h)| Source {
                n: i + 1,
                node: h.node,
                path: h.path,
                chunk: h.chunk,
                score: h.score,
                text: h.text,
            })
            .collect();
        r.trace.retrieval = Some(self.trace);
    }
}

/// What the user asked: the last user message of a conversation, or the raw text.
fn question(prompt: &Prompt) -> String {
    let mut q = match prompt {
        Prompt::Chat(m) => m
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.clone())
            .unwrap_or_default(),
        Prompt::Text(t) => t.clone(),
    };
    truncate_utf8(&mut q, MAX_QUERY_BYTES);
    q
}

impl Inner {
    /// Retrieves passages for `job` and puts them in its request's context. Refused with
    /// `overloaded` when as many retrievals run as jobs may; otherwise never fails: with no
    /// node sharing, or none answering, the job goes on without passages and says so.
    pub(crate) async fn ground(self: &Arc<Self>, job: &mut Job) -> Result<Grounding, InferError> {
        let _slot = self
            .retrievals
            .clone()
            .try_acquire_owned()
            .map_err(|_| InferError::Overloaded { retry_after_s: 1 })?;
        let query = KnowledgeQuery {
            query: question(&job.request.prompt),
            k: self.config.rag_k.clamp(1, nova_proto::knowledge::MAX_HITS) as u32,
        };
        let grounding = self.retrieve(query).await;
        job.request.context = grounding
            .hits
            .iter()
            .map(|h| Passage { source: format!("{}: {}", h.node, h.path), text: h.text.clone() })
            .collect();
        Ok(grounding)
    }

    async fn retrieve(&self, query: KnowledgeQuery) -> Grounding {
        let t0 = Instant::now();
        let now = crate::now_ms();
        let workers = lock(&self.workers).clone();
        let mut asks: Vec<(String, BoxFuture<'static, Result<KnowledgeReply, String>>)> = workers
            .iter()
            .filter_map(|w| Some((w.view(now).name, w.retrieve(query.clone())?)))
            .collect();
        if let Some((name, kb)) = lock(&self.knowledge).clone() {
            let q = query.clone();
            asks.push((
                name,
                Box::pin(async move {
                    tokio::task::spawn_blocking(move || kb.search(&q))
                        .await
                        .map_err(|e| format!("search failed: {e}"))?
                }),
            ));
        }
        let deadline = self.config.retrieval_timeout;
        let asked = asks.len();
        let answers = join_all(asks.into_iter().map(|(name, ask)| async move {
            match tokio::time::timeout(deadline, ask).await {
                Ok(Ok(reply)) => Ok((name, reply)),
                Ok(Err(e)) => Err(skipped(&name, &e)),
                Err(_) => {
                    Err(skipped(&name, &format!("no answer within {} ms", deadline.as_millis())))
                }
            }
        }))
        .await;
        let (mut replies, mut skipped) = (Vec::new(), Vec::new());
        for a in answers {
            match a {
                Ok(r) => replies.push(r),
                Err(why) => skipped.push(why),
            }
        }
        let answered = replies.len();
        let mut hits = merge(replies, query.k as usize);
        let best = hits.first().map_or(0.0, |h| h.score);
        hits.retain(|h| h.score >= best * MIN_SCORE_SHARE);
        if !skipped.is_empty() {
            tracing::warn!(skipped = ?skipped, "retrieval went on without some nodes");
        }
        let trace = Retrieval {
            latency_ms: t0.elapsed().as_secs_f64() * 1000.0,
            asked,
            answered,
            skipped,
            hits: hits.len(),
        };
        Grounding { hits, trace }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_error_message_cannot_bloat_the_trace() {
        let s = skipped("b", &"é".repeat(1 << 19));
        assert!(s.starts_with("b: é") && s.len() <= 3 + MAX_SKIP_REASON_BYTES, "{}", s.len());
        assert_eq!(skipped("b", "busy"), "b: busy");
    }
}
