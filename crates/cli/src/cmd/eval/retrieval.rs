//! What a RAG answer says about its retrieval: the cited sources (top-level `sources`) and the
//! fan-out's figures (`trace.retrieval`), and whether an item's gold file was among the sources.
//!
//! Read from untyped JSON and tolerant of missing or odd fields, like `stats::tokens_spent`: a
//! gateway without retrieval simply reports nothing here.

use serde::Serialize;
use serde_json::Value;

/// Most sources kept per item (a gateway sends its top k, at most 16).
const MAX_SOURCES: usize = 16;
/// Longest node name or path kept.
const MAX_NAME_CHARS: usize = 512;
/// Most skipped node names kept.
const MAX_SKIPPED: usize = 16;

/// One cited source, without its text (the eval keeps where an answer came from, not what
/// the documents say).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct SourceRef {
    pub(crate) node: String,
    pub(crate) path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) chunk: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) score: Option<f64>,
}

/// The retrieval behind one answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Retrieval {
    /// `trace.retrieval.latency_ms`: the fan-out's wall time at the gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) latency_ms: Option<f64>,
    /// Nodes asked, nodes that answered in time, and those skipped (by name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) asked: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) answered: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) skipped: Vec<String>,
    /// Hits the nodes returned before the merge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hits: Option<u64>,
    /// The cited sources, best first.
    pub(crate) sources: Vec<SourceRef>,
}

/// The retrieval reported by a `/submit` response, or `None` when it reports none (RAG off, or
/// a gateway that does not retrieve): neither a `sources` array nor a `trace.retrieval` object.
pub(crate) fn read(response: &Value) -> Option<Retrieval> {
    let sources = response.get("sources").and_then(Value::as_array);
    let trace = response.get("trace").and_then(|t| t.get("retrieval")).filter(|r| r.is_object());
    if sources.is_none() && trace.is_none() {
        return None;
    }
    let text = |v: Option<&Value>| {
        super::report::truncate(v.and_then(Value::as_str).unwrap_or_default(), MAX_NAME_CHARS)
    };
    let sources = sources
        .map(|s| {
            s.iter()
                .filter(|x| x.is_object())
                .take(MAX_SOURCES)
                .map(|x| SourceRef {
                    node: text(x.get("node")),
                    path: text(x.get("path")),
                    chunk: x.get("chunk").and_then(Value::as_u64),
                    score: x.get("score").and_then(Value::as_f64).filter(|s| s.is_finite()),
                })
                .collect()
        })
        .unwrap_or_default();
    let field = |name: &str| trace.and_then(|t| t.get(name));
    Some(Retrieval {
        latency_ms: field("latency_ms")
            .and_then(Value::as_f64)
            .filter(|l| l.is_finite() && *l >= 0.0),
        asked: field("asked").and_then(Value::as_u64),
        answered: field("answered").and_then(Value::as_u64),
        skipped: field("skipped")
            .and_then(Value::as_array)
            .map(|s| s.iter().take(MAX_SKIPPED).map(|n| text(Some(n))).collect())
            .unwrap_or_default(),
        hits: field("hits").and_then(Value::as_u64),
        sources,
    })
}

impl Retrieval {
    /// The 1-based rank of the first source that is the file `gold`, if any is.
    pub(crate) fn gold_rank(&self, gold: &str) -> Option<usize> {
        self.sources.iter().position(|s| same_file(&s.path, gold)).map(|i| i + 1)
    }
}

/// Whether a reported path names the gold file. A node reports the shared directory's name
/// and the path inside it (`shard-b/notes/x.md`), which is how the set names its sources; a
/// node that reports more of the path (`corpus/shard-b/notes/x.md`) still matches, on a path
/// component boundary. Backslashes are read as slashes.
pub(crate) fn same_file(reported: &str, gold: &str) -> bool {
    let norm = |p: &str| p.replace('\\', "/").trim_start_matches("./").to_string();
    let (reported, gold) = (norm(reported), norm(gold));
    if gold.is_empty() {
        return false;
    }
    reported == gold || reported.ends_with(&format!("/{gold}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_sources_and_the_trace() {
        let r = read(&json!({
            "text": "Odile Varga [1]",
            "sources": [
                {"n": 1, "node": "b", "path": "shard-b/x.md", "chunk": 0, "score": 3.2, "text": "..."},
                {"n": 2, "node": "a", "path": "shard-a/y.md", "chunk": 4, "score": 1.5, "text": "..."},
            ],
            "trace": {"retrieval": {"latency_ms": 12.3, "asked": 3, "answered": 2,
                "skipped": ["c"], "hits": 6}},
        }))
        .expect("retrieval reported");
        assert_eq!(r.latency_ms, Some(12.3));
        assert_eq!((r.asked, r.answered, r.hits), (Some(3), Some(2), Some(6)));
        assert_eq!(r.skipped, ["c"]);
        assert_eq!(r.sources.len(), 2);
        assert_eq!(
            r.sources[1],
            SourceRef {
                node: "a".into(),
                path: "shard-a/y.md".into(),
                chunk: Some(4),
                score: Some(1.5)
            }
        );
        assert_eq!(r.gold_rank("shard-a/y.md"), Some(2));
        assert_eq!(r.gold_rank("shard-b/x.md"), Some(1));
        assert_eq!(r.gold_rank("shard-c/x.md"), None);
        // The passages' text is not kept.
        assert!(!serde_json::to_string(&r).unwrap_or_default().contains("..."));
    }

    #[test]
    fn absent_or_odd_retrieval_is_tolerated() {
        assert_eq!(read(&json!({"text": "x", "trace": {"attempts": []}})), None);
        assert_eq!(read(&json!({"text": "x", "sources": null, "trace": {"retrieval": 5}})), None);
        // Sources without a trace, and a trace without sources: what is there is kept.
        let r = read(&json!({"sources": [{"path": "shard-a/y.md"}, 7, {"node": 3}]}))
            .expect("sources reported");
        assert_eq!(r.latency_ms, None);
        assert_eq!(r.sources.len(), 2);
        assert_eq!(r.sources[1].node, "");
        let r = read(&json!({"trace": {"retrieval": {"latency_ms": -1, "asked": "3"}}}))
            .expect("trace reported");
        assert_eq!((r.latency_ms, r.asked), (None, None));
        assert!(r.sources.is_empty());
        assert_eq!(r.gold_rank("shard-a/y.md"), None);
        // At most MAX_SOURCES are kept.
        let many: Vec<Value> = (0..40).map(|i| json!({"path": format!("p{i}")})).collect();
        assert_eq!(read(&json!({"sources": many})).map(|r| r.sources.len()), Some(MAX_SOURCES));
    }

    #[test]
    fn gold_files_match_on_path_components() {
        assert!(same_file("shard-b/notes/x.md", "shard-b/notes/x.md"));
        assert!(same_file("corpus/shard-b/notes/x.md", "shard-b/notes/x.md"));
        assert!(same_file("shard-b\\notes\\x.md", "shard-b/notes/x.md"));
        assert!(same_file("./shard-b/notes/x.md", "shard-b/notes/x.md"));
        assert!(!same_file("xshard-b/notes/x.md", "shard-b/notes/x.md"));
        assert!(!same_file("shard-b/notes/x.md.bak", "shard-b/notes/x.md"));
        assert!(!same_file("shard-c/notes/x.md", "shard-b/notes/x.md"));
        assert!(!same_file("anything", ""));
    }
}
