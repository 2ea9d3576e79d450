//! Federated retrieval: what the gateway asks a node that shares its documents, what the node
//! answers, and how the gateway merges answers from several nodes into one ranking.
//!
//! Scores from different nodes are not comparable when each node weighs terms by its own
//! corpus (a term rare on one node is common on another). So a node does not send its score
//! alone: it sends its collection statistics (chunks, total tokens, document frequency of each
//! query term) and, per hit, the term frequencies and length. The gateway sums the statistics
//! and scores every hit with BM25 over the union of the corpora, exactly what one index over
//! all the documents would give for those candidates, in one round trip.
//!
//! Both sides split text into terms with [`tokens`], so they agree on what a term is.

use serde::{Deserialize, Serialize};

/// Most terms of a query that are searched; the rest are ignored.
pub const MAX_QUERY_TERMS: usize = 32;
/// Longest term kept, in bytes; longer runs of letters are not words anyone searches for.
pub const MAX_TERM_BYTES: usize = 48;
/// Most bytes of query text read.
pub const MAX_QUERY_BYTES: usize = 2048;
/// Most hits a node returns for one query.
pub const MAX_HITS: usize = 16;
/// Longest snippet a node sends, in bytes.
pub const MAX_SNIPPET_BYTES: usize = 2048;
/// Longest path a node reports, in bytes.
pub const MAX_SOURCE_PATH_BYTES: usize = 512;

/// BM25's term-frequency saturation.
const K1: f64 = 1.2;
/// BM25's length normalisation.
const B: f64 = 0.75;

/// Words too common to say anything about a document. Kept short: the corpus weighs the rest.
const STOPWORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "by", "can", "did", "do", "does", "for",
    "from", "has", "have", "how", "i", "in", "is", "it", "its", "me", "my", "of", "on", "or",
    "tell", "that", "the", "their", "this", "to", "was", "what", "when", "where", "which", "who",
    "whom", "whose", "why", "with", "you", "your",
];

/// The terms of `text`: maximal runs of letters and digits, lowercased. Runs longer than
/// [`MAX_TERM_BYTES`] are skipped. Index and query use this same function.
pub fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty() && t.len() <= MAX_TERM_BYTES)
        .map(str::to_lowercase)
}

/// The distinct terms of a query, stopwords dropped, in order of first appearance; at most
/// [`MAX_QUERY_TERMS`], from at most [`MAX_QUERY_BYTES`] of text.
pub fn query_terms(query: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tokens(prefix_utf8(query, MAX_QUERY_BYTES)) {
        if out.len() == MAX_QUERY_TERMS {
            break;
        }
        if !STOPWORDS.contains(&t.as_str()) && !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// A retrieval request: the gateway → a node sharing its documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnowledgeQuery {
    /// The question, as the user asked it.
    pub query: String,
    /// Hits wanted, at most [`MAX_HITS`].
    pub k: u32,
}

/// One passage a node found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnowledgeHit {
    /// Where it is: the shared directory's name, then the path inside it (never an absolute
    /// path, which would say more about the device than the document).
    pub path: String,
    /// Which chunk of the file, from 0.
    pub chunk: u32,
    /// The passage.
    pub text: String,
    /// Its length in terms ([`tokens`]).
    pub len: u32,
    /// How often each of the reply's `terms` occurs in it, in the same order.
    pub tf: Vec<u32>,
}

/// The statistics of a node's whole index, for scoring across nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusStats {
    /// Chunks indexed.
    pub chunks: u64,
    /// Terms in all chunks together.
    pub tokens: u64,
    /// The query's terms, as this node split the query.
    pub terms: Vec<String>,
    /// How many chunks contain each term, in the order of `terms`.
    pub df: Vec<u64>,
}

/// A node's answer to a [`KnowledgeQuery`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KnowledgeReply {
    /// Its index's statistics.
    pub stats: CorpusStats,
    /// Its best candidates, best first, at most `k`.
    pub hits: Vec<KnowledgeHit>,
}

impl KnowledgeReply {
    /// Holds a reply from a peer to the bounds a well-behaved node keeps: at most `k` hits,
    /// [`MAX_QUERY_TERMS`] terms, snippets and paths cut to their limits, and per-term lists
    /// that match the terms. Returns what is left; a peer cannot make the gateway keep more.
    pub fn bounded(mut self, k: usize) -> Self {
        self.hits.truncate(k.min(MAX_HITS));
        let terms = self.stats.terms.len().min(self.stats.df.len()).min(MAX_QUERY_TERMS);
        self.stats.terms.truncate(terms);
        self.stats.df.truncate(terms);
        for h in &mut self.hits {
            truncate_utf8(&mut h.text, MAX_SNIPPET_BYTES);
            truncate_utf8(&mut h.path, MAX_SOURCE_PATH_BYTES);
            h.tf.resize(terms, 0);
        }
        self
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn prefix_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate_utf8(s: &mut String, max: usize) {
    let end = prefix_utf8(s, max).len();
    s.truncate(end);
}

/// A hit ranked across every node that answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedHit {
    /// The node that holds it (the name it reports).
    pub node: String,
    /// Its path there (see [`KnowledgeHit::path`]).
    pub path: String,
    /// Which chunk of the file.
    pub chunk: u32,
    /// BM25 over the union of the answering nodes' corpora.
    pub score: f64,
    /// The passage.
    pub text: String,
}

/// Merges the replies of several nodes, `(node name, reply)`, into the `k` best hits by BM25
/// computed with the summed statistics of every reply (see the module docs). Ties keep the
/// order the replies came in.
pub fn merge(replies: Vec<(String, KnowledgeReply)>, k: usize) -> Vec<RankedHit> {
    let chunks: u64 = replies.iter().map(|(_, r)| r.stats.chunks).sum();
    let tokens: u64 = replies.iter().map(|(_, r)| r.stats.tokens).sum();
    if chunks == 0 {
        return Vec::new();
    }
    let avg_len = (tokens as f64 / chunks as f64).max(1.0);
    // At most MAX_QUERY_TERMS terms per (bounded) reply: the linear lookups stay small.
    let mut df: Vec<(String, u64)> = Vec::new();
    for (_, r) in &replies {
        for (t, d) in r.stats.terms.iter().zip(&r.stats.df) {
            match df.iter_mut().find(|(x, _)| x == t) {
                Some((_, sum)) => *sum += d,
                None => df.push((t.clone(), *d)),
            }
        }
    }
    let idf = |term: &str| {
        let n = df.iter().find(|(t, _)| *t == term).map_or(0, |(_, d)| *d).min(chunks) as f64;
        (1.0 + (chunks as f64 - n + 0.5) / (n + 0.5)).ln()
    };
    let mut out: Vec<RankedHit> = Vec::new();
    for (node, r) in replies {
        let weights: Vec<f64> = r.stats.terms.iter().map(|t| idf(t)).collect();
        for h in r.hits {
            let norm = K1 * (1.0 - B + B * f64::from(h.len) / avg_len);
            let score =
                h.tf.iter()
                    .zip(&weights)
                    .map(|(&tf, w)| {
                        let tf = f64::from(tf);
                        w * tf * (K1 + 1.0) / (tf + norm)
                    })
                    .sum();
            out.push(RankedHit {
                node: node.clone(),
                path: h.path,
                chunk: h.chunk,
                score,
                text: h.text,
            });
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out.truncate(k);
    out
}

/// What a node says about the documents it shares, in its heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnowledgeSummary {
    /// Files indexed.
    pub files: u64,
    /// Chunks indexed.
    pub chunks: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(path: &str, len: u32, tf: Vec<u32>) -> KnowledgeHit {
        KnowledgeHit { path: path.into(), chunk: 0, text: path.into(), len, tf }
    }

    fn reply(
        chunks: u64,
        tokens: u64,
        terms: &[(&str, u64)],
        hits: Vec<KnowledgeHit>,
    ) -> KnowledgeReply {
        KnowledgeReply {
            stats: CorpusStats {
                chunks,
                tokens,
                terms: terms.iter().map(|(t, _)| t.to_string()).collect(),
                df: terms.iter().map(|(_, d)| *d).collect(),
            },
            hits,
        }
    }

    #[test]
    fn terms_are_lowercased_words_without_stopwords_or_repeats() {
        assert_eq!(
            query_terms("Who owns product ZX-81? Who OWNS it?"),
            vec!["owns", "product", "zx", "81"]
        );
        assert_eq!(tokens("Crème brûlée, 2x").collect::<Vec<_>>(), vec!["crème", "brûlée", "2x"]);
    }

    #[test]
    fn query_terms_are_bounded() {
        let long = (0..10_000).map(|i| format!("w{i} ")).collect::<String>();
        assert_eq!(query_terms(&long).len(), MAX_QUERY_TERMS);
        assert!(query_terms(&"x".repeat(100)).is_empty());
        // A cut inside a multi-byte character does not panic.
        let s = "é".repeat(MAX_QUERY_BYTES);
        assert_eq!(query_terms(&s).len(), 0);
    }

    #[test]
    fn a_term_rare_in_the_union_outweighs_one_common_in_the_union() {
        // Node A has many chunks with "recipe"; node B has one chunk with "zx81", and "recipe"
        // is rare on B. Locally each node would call its own term rare; merged, "zx81" wins.
        let a = reply(100, 10_000, &[("recipe", 90), ("zx81", 0)], vec![hit("a", 100, vec![1, 0])]);
        let b = reply(10, 1_000, &[("recipe", 1), ("zx81", 1)], vec![hit("b", 100, vec![0, 1])]);
        let merged = merge(vec![("A".into(), a), ("B".into(), b)], 5);
        assert_eq!(merged[0].node, "B");
        assert!(merged[0].score > merged[1].score);
    }

    #[test]
    fn merge_keeps_the_k_best_and_survives_an_empty_swarm() {
        assert!(merge(vec![], 3).is_empty());
        let hits = (0..10).map(|i| hit(&format!("f{i}"), 50, vec![i])).collect();
        let merged = merge(vec![("A".into(), reply(10, 500, &[("x", 10)], hits))], 3);
        assert_eq!(merged.iter().map(|h| h.path.as_str()).collect::<Vec<_>>(), ["f9", "f8", "f7"]);
    }

    #[test]
    fn a_peer_cannot_make_the_gateway_keep_more_than_it_asked() {
        let hits = (0..100)
            .map(|i| KnowledgeHit {
                path: "p".repeat(10_000),
                chunk: i,
                text: "é".repeat(10_000),
                len: 1,
                tf: vec![1; 1000],
            })
            .collect();
        let terms: Vec<(String, u64)> = (0..100).map(|i| (format!("t{i}"), 1)).collect();
        let terms: Vec<(&str, u64)> = terms.iter().map(|(t, d)| (t.as_str(), *d)).collect();
        let r = reply(1, 1, &terms, hits).bounded(4);
        assert_eq!(r.hits.len(), 4);
        assert_eq!(r.stats.terms.len(), MAX_QUERY_TERMS);
        assert!(r.hits.iter().all(|h| h.text.len() <= MAX_SNIPPET_BYTES
            && h.path.len() <= MAX_SOURCE_PATH_BYTES
            && h.tf.len() == MAX_QUERY_TERMS));
    }
}
