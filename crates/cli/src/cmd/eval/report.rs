//! Per-configuration summaries, the Markdown tables and the JSON results file.

use std::{collections::BTreeMap, fmt::Write as _, io::Write as _, path::Path};

use anyhow::Context as _;
use serde::Serialize;

use super::{
    retrieval::Retrieval,
    stats::{percentile, wilson},
};

/// Longest answer text kept per item.
pub(crate) const MAX_ANSWER_CHARS: usize = 200;

/// One item under one configuration.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ItemResult {
    pub(crate) id: String,
    pub(crate) kind: String,
    /// `None` when the request failed.
    pub(crate) correct: Option<bool>,
    /// The answer, cut to [`MAX_ANSWER_CHARS`] characters.
    pub(crate) answer: String,
    /// Tokens generated over every attempt and stage.
    pub(crate) tokens: u64,
    /// Client-measured wall time of the request.
    pub(crate) latency_ms: f64,
    /// `trace.strategy` as the gateway reported it.
    pub(crate) strategy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// The retrieval behind the answer, when the gateway reported one (`--rag`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) retrieval: Option<Retrieval>,
    /// Whether the item's gold `source` was among the cited sources; `None` when the item has
    /// no source or the answer reported no retrieval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) source_hit: Option<bool>,
    /// The gold source's 1-based rank among the cited sources, when cited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) source_rank: Option<usize>,
}

impl ItemResult {
    /// Records `retrieval` and, for an item whose answer is in the file `gold`, whether it
    /// was cited and at which rank.
    pub(crate) fn set_retrieval(&mut self, retrieval: Option<Retrieval>, gold: Option<&str>) {
        if let (Some(r), Some(gold)) = (&retrieval, gold) {
            self.source_rank = r.gold_rank(gold);
            self.source_hit = Some(self.source_rank.is_some());
        }
        self.retrieval = retrieval;
    }
}

/// Share of items whose gold file was cited.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Recall {
    /// Items answered with a retrieval report and a gold source.
    pub(crate) n: usize,
    pub(crate) cited: usize,
    pub(crate) recall: Option<f64>,
    /// 95 % Wilson interval.
    pub(crate) ci95: Option<(f64, f64)>,
}

impl Recall {
    fn of<'a>(items: impl Iterator<Item = &'a ItemResult>) -> Option<Self> {
        let hits: Vec<bool> = items.filter_map(|i| i.source_hit).collect();
        if hits.is_empty() {
            return None;
        }
        let (n, cited) = (hits.len(), hits.iter().filter(|h| **h).count());
        Some(Recall { n, cited, recall: Some(cited as f64 / n as f64), ci95: wilson(cited, n) })
    }

    fn cell(&self) -> String {
        match (self.recall, self.ci95) {
            (Some(r), Some((lo, hi))) => format!(
                "{}/{} = {:.1}% [{:.1}, {:.1}]",
                self.cited,
                self.n,
                r * 100.0,
                lo * 100.0,
                hi * 100.0
            ),
            _ => "-".into(),
        }
    }
}

/// Accuracy of a group of answered items.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Accuracy {
    /// Items answered (errors excluded).
    pub(crate) n: usize,
    pub(crate) correct: usize,
    /// `correct / n`; `None` when nothing was answered.
    pub(crate) accuracy: Option<f64>,
    /// 95 % Wilson interval.
    pub(crate) ci95: Option<(f64, f64)>,
}

impl Accuracy {
    fn of<'a>(items: impl Iterator<Item = &'a ItemResult>) -> Self {
        let answered: Vec<bool> = items.filter_map(|i| i.correct).collect();
        let (n, correct) = (answered.len(), answered.iter().filter(|c| **c).count());
        Accuracy {
            n,
            correct,
            accuracy: (n > 0).then(|| correct as f64 / n as f64),
            ci95: wilson(correct, n),
        }
    }

    fn cell(&self) -> String {
        match (self.accuracy, self.ci95) {
            (Some(a), Some((lo, hi))) => {
                format!("{:.1}% [{:.1}, {:.1}]", a * 100.0, lo * 100.0, hi * 100.0)
            }
            _ => "-".into(),
        }
    }
}

/// One configuration's results.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ConfigReport {
    pub(crate) config: String,
    /// Strategy sent (`None`: the gateway's default).
    pub(crate) strategy: Option<&'static str>,
    pub(crate) fanout: Option<usize>,
    #[serde(flatten)]
    pub(crate) overall: Accuracy,
    pub(crate) errors: usize,
    pub(crate) first_error: Option<String>,
    /// Mean tokens generated per answered item.
    pub(crate) tokens_per_item: Option<f64>,
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p95_ms: Option<f64>,
    /// Whether the requests asked for retrieval (`--rag`).
    pub(crate) rag: bool,
    /// Answers that reported a retrieval, and the p50/p95 of the fan-out's latency as the
    /// gateway measured it (`trace.retrieval.latency_ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) retrieved: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) retrieval_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) retrieval_p95_ms: Option<f64>,
    /// Share of items (with a gold `source`) whose gold file was cited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) source_recall: Option<Recall>,
    pub(crate) per_kind: BTreeMap<String, Accuracy>,
    pub(crate) items: Vec<ItemResult>,
}

impl ConfigReport {
    pub(crate) fn new(
        config: String,
        strategy: Option<&'static str>,
        fanout: Option<usize>,
        rag: bool,
        items: Vec<ItemResult>,
    ) -> Self {
        let answered: Vec<&ItemResult> = items.iter().filter(|i| i.correct.is_some()).collect();
        let latencies: Vec<f64> = answered.iter().map(|i| i.latency_ms).collect();
        let retrieved = answered.iter().filter(|i| i.retrieval.is_some()).count();
        let retrieval_ms: Vec<f64> = answered
            .iter()
            .filter_map(|i| i.retrieval.as_ref().and_then(|r| r.latency_ms))
            .collect();
        let kinds: Vec<String> = {
            let mut k: Vec<String> = items.iter().map(|i| i.kind.clone()).collect();
            k.sort();
            k.dedup();
            k
        };
        ConfigReport {
            config,
            strategy,
            fanout,
            overall: Accuracy::of(items.iter()),
            errors: items.len() - answered.len(),
            first_error: items.iter().find_map(|i| i.error.clone()),
            tokens_per_item: (!answered.is_empty()).then(|| {
                answered.iter().map(|i| i.tokens).sum::<u64>() as f64 / answered.len() as f64
            }),
            p50_ms: percentile(&latencies, 50.0),
            p95_ms: percentile(&latencies, 95.0),
            rag,
            retrieved: (retrieved > 0).then_some(retrieved),
            retrieval_p50_ms: percentile(&retrieval_ms, 50.0),
            retrieval_p95_ms: percentile(&retrieval_ms, 95.0),
            source_recall: Recall::of(answered.iter().copied()),
            per_kind: kinds
                .into_iter()
                .map(|k| {
                    let acc = Accuracy::of(items.iter().filter(|i| i.kind == k));
                    (k, acc)
                })
                .collect(),
            items,
        }
    }
}

/// The summary table, then the per-kind table, as Markdown.
pub(crate) fn tables(reports: &[ConfigReport]) -> String {
    let opt = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
    let mut s = String::new();
    let _ =
        writeln!(s, "| config | n | accuracy [95% CI] | tokens/item | p50 ms | p95 ms | errors |");
    let _ = writeln!(s, "|---|---:|---|---:|---:|---:|---:|");
    for r in reports {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.config,
            r.overall.n,
            r.overall.cell(),
            opt(r.tokens_per_item, 1),
            opt(r.p50_ms, 0),
            opt(r.p95_ms, 0),
            r.errors
        );
    }
    let mut kinds: Vec<&String> = reports.iter().flat_map(|r| r.per_kind.keys()).collect();
    kinds.sort();
    kinds.dedup();
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| config | {} |",
        kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(" | ")
    );
    let _ = writeln!(s, "|---|{}", "---:|".repeat(kinds.len()));
    for r in reports {
        let cells: Vec<String> = kinds
            .iter()
            .map(|k| match r.per_kind.get(*k) {
                Some(a) if a.n > 0 => {
                    format!("{}/{} ({:.0}%)", a.correct, a.n, a.accuracy.unwrap_or(0.0) * 100.0)
                }
                _ => "-".into(),
            })
            .collect();
        let _ = writeln!(s, "| {} | {} |", r.config, cells.join(" | "));
    }
    if reports.iter().any(|r| r.retrieved.is_some()) {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| config | answers with retrieval | retrieval p50 ms | retrieval p95 ms | gold source cited [95% CI] |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---|");
        for r in reports {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                r.config,
                r.retrieved.unwrap_or(0),
                opt(r.retrieval_p50_ms, 1),
                opt(r.retrieval_p95_ms, 1),
                r.source_recall.as_ref().map_or("-".into(), Recall::cell)
            );
        }
    }
    s
}

/// Writes `value` as JSON to `path` atomically: a temporary file in the same directory, then
/// a rename, so a reader never sees half a file and an interrupted run leaves the old one.
pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    serde_json::to_writer_pretty(&mut tmp, value).context("cannot write the results")?;
    tmp.write_all(b"\n").context("cannot write the results")?;
    tmp.as_file().sync_all().context("cannot flush the results")?;
    tmp.persist(path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// `text` cut to `max` characters (not bytes), marked with `…` when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// UTC date and time as RFC 3339, from the system clock.
pub(crate) fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = nova_proto::calendar::civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: &str, correct: Option<bool>, tokens: u64, ms: f64) -> ItemResult {
        ItemResult {
            id: "x".into(),
            kind: kind.into(),
            correct,
            answer: String::new(),
            tokens,
            latency_ms: ms,
            strategy: Some("race".into()),
            error: correct.is_none().then(|| "HTTP 422".into()),
            retrieval: None,
            source_hit: None,
            source_rank: None,
        }
    }

    #[test]
    fn errors_are_counted_apart_from_accuracy() {
        let r = ConfigReport::new(
            "greedy".into(),
            Some("race"),
            Some(1),
            false,
            vec![
                item("a", Some(true), 4, 10.0),
                item("a", Some(false), 6, 30.0),
                item("b", None, 0, 1.0),
                item("b", Some(true), 2, 20.0),
            ],
        );
        assert_eq!((r.overall.n, r.overall.correct, r.errors), (3, 2, 1));
        assert_eq!(r.tokens_per_item, Some(4.0));
        assert_eq!((r.p50_ms, r.p95_ms), (Some(20.0), Some(30.0)));
        assert_eq!(r.per_kind["b"].n, 1);
        assert_eq!(r.first_error.as_deref(), Some("HTTP 422"));
        let json = serde_json::to_string(&r).unwrap_or_default();
        let t = tables(&[r]);
        assert!(t.contains("| greedy | 3 | 66.7% [20.8, 93.9] | 4.0 | 20 | 30 | 1 |"), "{t}");
        assert!(t.contains("| greedy | 1/2 (50%) | 1/1 (100%) |"), "{t}");
        // No retrieval reported: no retrieval table, no retrieval fields in the JSON.
        assert!(!t.contains("retrieval p50"), "{t}");
        assert!(!json.contains("retrieval_p50_ms") && !json.contains("source_recall"), "{json}");
    }

    #[test]
    fn retrieval_latency_and_source_recall() {
        let rag = |ms: Option<f64>, sources: &[&str], gold: Option<&str>, ok: Option<bool>| {
            let mut i = item("k", ok, 1, 100.0);
            let sources: Vec<serde_json::Value> =
                sources.iter().map(|p| serde_json::json!({"node": "n", "path": p})).collect();
            let mut trace = serde_json::json!({"asked": 3, "answered": 3});
            if let Some(ms) = ms {
                trace["latency_ms"] = serde_json::json!(ms);
            }
            let resp = serde_json::json!({"sources": sources, "trace": {"retrieval": trace}});
            i.set_retrieval(super::super::retrieval::read(&resp), gold);
            i
        };
        let items = vec![
            rag(Some(10.0), &["shard-a/x.md", "shard-b/y.md"], Some("shard-b/y.md"), Some(true)),
            rag(Some(30.0), &["shard-a/x.md"], Some("shard-c/z.md"), Some(false)),
            rag(Some(20.0), &[], Some("shard-a/w.md"), Some(false)),
            // No gold source: latency counts, recall does not.
            rag(Some(40.0), &["shard-a/x.md"], None, Some(true)),
            // Reported without a latency.
            rag(None, &["shard-a/v.md"], Some("shard-a/v.md"), Some(true)),
            // A failed request counts for neither.
            rag(Some(1000.0), &["shard-a/u.md"], Some("shard-a/u.md"), None),
        ];
        assert_eq!(items[0].source_rank, Some(2));
        assert_eq!((items[1].source_hit, items[3].source_hit), (Some(false), None));
        let r = ConfigReport::new("greedy+rag".into(), Some("race"), Some(1), true, items);
        assert_eq!(r.retrieved, Some(5));
        assert_eq!((r.retrieval_p50_ms, r.retrieval_p95_ms), (Some(20.0), Some(40.0)));
        let recall = r.source_recall.clone().expect("recall");
        assert_eq!((recall.n, recall.cited), (4, 2));
        let t = tables(&[r]);
        assert!(t.contains("| greedy+rag | 5 | 20.0 | 40.0 | 2/4 = 50.0% [15.0, 85.0] |"), "{t}");
    }

    #[test]
    fn items_without_retrieval_have_no_recall() {
        let mut i = item("k", Some(true), 1, 1.0);
        i.set_retrieval(None, Some("shard-a/x.md"));
        assert_eq!((i.source_hit, i.source_rank), (None, None));
        let r = ConfigReport::new("greedy".into(), Some("race"), Some(1), true, vec![i]);
        assert!(r.source_recall.is_none() && r.retrieved.is_none());
    }

    #[test]
    fn truncation() {
        assert_eq!(truncate("héllo", 3), "hél…");
        assert_eq!(truncate("héllo", 5), "héllo");
    }
}
