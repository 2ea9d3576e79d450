//! The question set: a JSONL file of items, loaded with bounds and precise errors.

use std::{collections::BTreeSet, io::Read, path::Path};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// Largest set file read.
const MAX_BYTES: u64 = 10 << 20;
/// Most items in a set.
const MAX_ITEMS: usize = 10_000;
/// Longest prompt, in bytes.
const MAX_PROMPT: usize = 8 << 10;
/// Most accepted forms per item, and the longest one.
const MAX_ANSWERS: usize = 32;
const MAX_ANSWER: usize = 256;
/// Longest `source` path, in bytes.
const MAX_SOURCE: usize = 512;

/// One question. Fields not named here are ignored, so a set can carry notes of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Item {
    /// Unique within the set, e.g. `arith-001`.
    pub(crate) id: String,
    /// The item's category, e.g. `arithmetic`.
    pub(crate) kind: String,
    /// Sent to the gateway as is.
    pub(crate) prompt: String,
    /// Every accepted form of the answer.
    pub(crate) answers: Vec<String>,
    /// The file that answers it, as a node sharing it reports it (`shard-b/notes/x.md`), for
    /// sets over a document corpus: with `--rag`, whether an answer cited it is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) source: Option<String>,
}

/// Reads the set at `path`.
pub(crate) fn load(path: &Path) -> anyhow::Result<Vec<Item>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open the question set {}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {} as UTF-8 text", path.display()))?;
    if text.len() as u64 > MAX_BYTES {
        anyhow::bail!("{} is over {} MiB; split the set", path.display(), MAX_BYTES >> 20);
    }
    parse(&text).with_context(|| format!("in {}", path.display()))
}

/// Parses JSONL text, one item a line; blank lines are skipped.
pub(crate) fn parse(text: &str) -> anyhow::Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut ids = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        if items.len() == MAX_ITEMS {
            anyhow::bail!("line {n}: the set has more than {MAX_ITEMS} items");
        }
        let item: Item =
            serde_json::from_str(line).with_context(|| format!("line {n} is not a valid item"))?;
        check(&item).with_context(|| format!("line {n} (item {:?})", item.id))?;
        if !ids.insert(item.id.clone()) {
            anyhow::bail!("line {n}: the id {:?} is used twice", item.id);
        }
        items.push(item);
    }
    if items.is_empty() {
        anyhow::bail!("the set has no items");
    }
    Ok(items)
}

fn check(item: &Item) -> anyhow::Result<()> {
    if item.id.trim().is_empty() || item.kind.trim().is_empty() {
        anyhow::bail!("`id` and `kind` must not be empty");
    }
    if item.prompt.trim().is_empty() {
        anyhow::bail!("the prompt is empty");
    }
    if item.prompt.len() > MAX_PROMPT {
        anyhow::bail!("the prompt is {} bytes, over {MAX_PROMPT}", item.prompt.len());
    }
    if item.answers.is_empty() || item.answers.len() > MAX_ANSWERS {
        anyhow::bail!("an item needs 1 to {MAX_ANSWERS} accepted answers");
    }
    if item.answers.iter().any(|a| a.trim().is_empty() || a.len() > MAX_ANSWER) {
        anyhow::bail!("every accepted answer must be non-empty and at most {MAX_ANSWER} bytes");
    }
    if item.source.as_ref().is_some_and(|s| s.trim().is_empty() || s.len() > MAX_SOURCE) {
        anyhow::bail!("`source` must be non-empty and at most {MAX_SOURCE} bytes");
    }
    Ok(())
}

/// The items of the given kinds (all if `kinds` is empty), then at most `limit` of them taken
/// in turn from each kind, so a small limit still samples every kind rather than the first
/// one in the file.
pub(crate) fn select(
    items: Vec<Item>,
    kinds: &[String],
    limit: Option<usize>,
) -> anyhow::Result<Vec<Item>> {
    let known: BTreeSet<&str> = items.iter().map(|i| i.kind.as_str()).collect();
    if let Some(k) = kinds.iter().find(|k| !known.contains(k.as_str())) {
        anyhow::bail!(
            "no item has kind {k:?}; the set's kinds are {}",
            known.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let mut order: Vec<String> = Vec::new();
    let mut by_kind: Vec<std::collections::VecDeque<Item>> = Vec::new();
    for item in items {
        if !kinds.is_empty() && !kinds.contains(&item.kind) {
            continue;
        }
        match order.iter().position(|k| *k == item.kind) {
            Some(i) => by_kind[i].push_back(item),
            None => {
                order.push(item.kind.clone());
                by_kind.push([item].into());
            }
        }
    }
    let total: usize = by_kind.iter().map(|q| q.len()).sum();
    let want = limit.unwrap_or(total).min(total);
    let mut out = Vec::with_capacity(want);
    while out.len() < want {
        for q in &mut by_kind {
            if out.len() < want {
                out.extend(q.pop_front());
            }
        }
    }
    if out.is_empty() {
        anyhow::bail!("no items left after --kinds and --limit");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, kind: &str) -> String {
        format!(r#"{{"id":"{id}","kind":"{kind}","prompt":"p","answers":["a"]}}"#)
    }

    #[test]
    fn a_malformed_line_is_named() {
        let text = format!("{}\n\n{}\n{{\"id\":\"x\"\n", line("a", "k"), line("b", "k"));
        let e = format!("{:#}", parse(&text).unwrap_err());
        assert!(e.contains("line 4"), "{e}");
        let text =
            format!("{}\n{}", line("a", "k"), r#"{"id":"b","kind":"k","prompt":"p","answers":[]}"#);
        let e = format!("{:#}", parse(&text).unwrap_err());
        assert!(e.contains("line 2") && e.contains("accepted answers"), "{e}");
        let e =
            format!("{:#}", parse(&format!("{}\n{}", line("a", "k"), line("a", "k"))).unwrap_err());
        assert!(e.contains("line 2") && e.contains("used twice"), "{e}");
        let e = format!(
            "{:#}",
            parse(r#"{"id":"a","kind":"k","prompt":"p","answer":["a"]}"#).unwrap_err()
        );
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn an_empty_or_missing_set_is_an_error() {
        assert!(format!("{:#}", parse("\n \n").unwrap_err()).contains("no items"));
        let e = format!("{:#}", load(Path::new("/nonexistent/questions.jsonl")).unwrap_err());
        assert!(e.contains("cannot open the question set /nonexistent/questions.jsonl"), "{e}");
    }

    #[test]
    fn an_oversized_prompt_is_refused() {
        let big = "x".repeat(MAX_PROMPT + 1);
        let text = format!(r#"{{"id":"a","kind":"k","prompt":"{big}","answers":["a"]}}"#);
        assert!(format!("{:#}", parse(&text).unwrap_err()).contains("over 8192"));
    }

    #[test]
    fn limit_takes_kinds_in_turn_and_kinds_filter() -> anyhow::Result<()> {
        let text = ["a1", "a2", "a3", "b1", "c1", "c2"].map(|id| line(id, &id[..1])).join("\n");
        let items = parse(&text)?;
        let ids = |v: Vec<Item>| v.into_iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(ids(select(items.clone(), &[], Some(5))?), ["a1", "b1", "c1", "a2", "c2"]);
        assert_eq!(
            ids(select(items.clone(), &["c".into(), "b".into()], None)?),
            ["b1", "c1", "c2"]
        );
        assert_eq!(ids(select(items.clone(), &[], None)?).len(), 6);
        assert!(select(items, &["z".into()], None).is_err());
        Ok(())
    }

    #[test]
    fn source_is_optional_and_unknown_fields_are_ignored() -> anyhow::Result<()> {
        let items = parse(concat!(
            r#"{"id":"a","kind":"k","prompt":"p","answers":["x"]}"#,
            "\n",
            r#"{"id":"b","kind":"k","prompt":"p","answers":["x"],"source":"shard-b/n.md","note":{"any":1}}"#,
        ))?;
        assert_eq!(items[0].source, None);
        assert_eq!(items[1].source.as_deref(), Some("shard-b/n.md"));
        let e = format!(
            "{:#}",
            parse(r#"{"id":"a","kind":"k","prompt":"p","answers":["x"],"source":" "}"#)
                .unwrap_err()
        );
        assert!(e.contains("`source`"), "{e}");
        Ok(())
    }

    #[test]
    fn the_docqa_set_loads_balanced_over_shards_with_sources() -> anyhow::Result<()> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../evals/docqa/questions.jsonl");
        let items = load(&path)?;
        assert!(items.len() >= 120, "{}", items.len());
        for shard in ["a", "b", "c"] {
            let mine: Vec<&Item> =
                items.iter().filter(|i| i.id.starts_with(&format!("docqa-{shard}-"))).collect();
            assert_eq!(mine.len() * 3, items.len(), "shard {shard}");
            for i in mine {
                let source = i.source.as_deref().unwrap_or_default();
                assert!(source.starts_with(&format!("shard-{shard}/")), "{}: {source}", i.id);
            }
        }
        Ok(())
    }

    #[test]
    fn the_shipped_set_loads() -> anyhow::Result<()> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../evals/questions.jsonl");
        let items = load(&path)?;
        assert!(items.len() >= 320, "{}", items.len());
        for kind in ["arithmetic", "units", "geography", "science", "reading"] {
            assert!(items.iter().filter(|i| i.kind == kind).count() >= 50, "{kind}");
        }
        Ok(())
    }
}
