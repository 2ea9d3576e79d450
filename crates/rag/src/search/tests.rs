//! Search against a brute-force count over every chunk's text.

use std::{fs, path::Path};

use nova_proto::knowledge::{
    query_terms, tokens, KnowledgeQuery, MAX_HITS, MAX_SNIPPET_BYTES, MAX_SOURCE_PATH_BYTES,
};

use super::match_terms;
use crate::{Index, Limits};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Words with case, accents, digits and a combining mark, so the tokenizers' agreement is
/// tested where it could break.
const WORDS: &[&str] = &[
    "apple",
    "Banana",
    "cherry",
    "café",
    "naïve",
    "İstanbul",
    "ZX-81",
    "owner",
    "product",
    "zebra",
    "42",
    "straße",
    "Ωmega",
    "rocket",
    "garden",
    "river",
    "stone",
    "cloud",
    "paper",
    "lamp",
    "orange",
    "violet",
    "copper",
    "silver",
    "nova",
    "swarm",
    "क्षत्रिय",
    "東京",
];

/// A small deterministic generator (splitmix64), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn doc(&mut self) -> String {
        let mut s = String::new();
        for _ in 0..1 + self.below(6) {
            if self.below(3) == 0 {
                s.push_str(&format!("## {}\n\n", WORDS[self.below(WORDS.len())]));
            }
            for _ in 0..5 + self.below(120) {
                s.push_str(WORDS[self.below(WORDS.len())]);
                s.push(if self.below(12) == 0 { '.' } else { ' ' });
            }
            s.push_str("\n\n");
        }
        s
    }
}

fn texts(ix: &Index) -> Result<Vec<String>> {
    let mut stmt = ix.conn.prepare("SELECT text FROM chunks")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Every statistic of the reply equals a count over the stored chunks' text.
fn check(ix: &Index, query: &str) -> Result {
    let reply = ix.search(&KnowledgeQuery { query: query.into(), k: 8 })?;
    let all = texts(ix)?;
    let terms = query_terms(query);
    assert_eq!(reply.stats.terms, terms);
    assert_eq!(reply.stats.chunks, all.len() as u64);
    let total: usize = all.iter().map(|t| tokens(t).count()).sum();
    assert_eq!(reply.stats.tokens, total as u64);
    let mut matching = 0;
    for t in &all {
        if tokens(t).any(|x| terms.contains(&x)) {
            matching += 1;
        }
    }
    for (term, df) in terms.iter().zip(&reply.stats.df) {
        let brute = all.iter().filter(|t| tokens(t).any(|x| x == *term)).count();
        assert_eq!(*df, brute as u64, "df of {term:?}");
    }
    assert_eq!(reply.hits.len(), matching.min(8), "{query:?}");
    for h in &reply.hits {
        assert_eq!(h.len as usize, tokens(&h.text).count());
        for (term, tf) in terms.iter().zip(&h.tf) {
            assert_eq!(*tf as usize, tokens(&h.text).filter(|x| x == term).count());
        }
        assert!(h.tf.iter().any(|&n| n > 0), "a hit without any term: {h:?}");
        assert!(h.path.starts_with("docs/d"), "{}", h.path);
    }
    Ok(())
}

fn write_docs(dir: &Path, rng: &mut Rng, range: std::ops::Range<usize>) -> Result {
    for i in range {
        fs::write(dir.join(format!("d{i}.md")), rng.doc())?;
    }
    Ok(())
}

#[test]
fn statistics_match_a_brute_force_count_through_edits() -> Result {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("docs");
    fs::create_dir(&root)?;
    let mut rng = Rng(7);
    write_docs(&root, &mut rng, 0..40)?;
    let mut ix = Index::in_memory(Limits::default())?;
    ix.add_root(&root)?;
    ix.reindex(None, &mut |_| {})?;
    let queries = [
        "apple",
        "Who owns product ZX-81?",
        "CAFÉ naive naïve",
        "istanbul İstanbul",
        "東京 42",
        "क्षत्रिय",
        "STRASSE straße ωmega",
        "unknownword",
        "rocket garden river stone cloud",
    ];
    for q in queries {
        check(&ix, q)?;
    }
    // Edits, deletions and new files leave deleted rows in FTS5's structures; the counts must
    // not see them.
    write_docs(&root, &mut rng, 10..50)?;
    for i in 0..5 {
        fs::remove_file(root.join(format!("d{i}.md")))?;
    }
    ix.reindex(None, &mut |_| {})?;
    for q in queries {
        check(&ix, q)?;
    }
    Ok(())
}

#[test]
fn empty_queries_and_indexes_answer_nothing_without_error() -> Result {
    let mut ix = Index::in_memory(Limits::default())?;
    let r = ix.search(&KnowledgeQuery { query: "anything".into(), k: 5 })?;
    assert!(r.hits.is_empty() && r.stats.chunks == 0 && r.stats.df == [0]);
    let tmp = tempfile::tempdir()?;
    fs::write(tmp.path().join("a.txt"), "some words here")?;
    ix.add_root(tmp.path())?;
    ix.reindex(None, &mut |_| {})?;
    for q in ["", "the of and", "!!! ???", "\"", "NOT AND OR", "x* NEAR(y)"] {
        let r = ix.search(&KnowledgeQuery { query: q.into(), k: 5 })?;
        assert!(r.hits.is_empty(), "{q:?}");
    }
    // FTS5 syntax in a query is just words.
    let r = ix.search(&KnowledgeQuery { query: "words\" OR NEAR(x*".into(), k: 5 })?;
    assert_eq!(r.hits.len(), 1);
    let r = ix.search(&KnowledgeQuery { query: "words\" OR NEAR(x*".into(), k: 0 })?;
    assert!(r.hits.is_empty() && r.stats.df == [1, 0, 0]);
    Ok(())
}

#[test]
fn replies_stay_within_the_wire_bounds() -> Result {
    let tmp = tempfile::tempdir()?;
    let long = "n".repeat(200);
    let dir = tmp.path().join(&long).join(&long);
    fs::create_dir_all(&dir)?;
    for i in 0..40 {
        fs::write(dir.join(format!("{i}.txt")), format!("needle {}", "é".repeat(900)))?;
    }
    let mut ix = Index::in_memory(Limits::default())?;
    ix.add_root(tmp.path())?;
    ix.reindex(None, &mut |_| {})?;
    let r = ix.search(&KnowledgeQuery { query: "needle".into(), k: 1000 })?;
    assert_eq!(r.hits.len(), MAX_HITS);
    for h in &r.hits {
        assert!(h.text.len() <= MAX_SNIPPET_BYTES && h.path.len() <= MAX_SOURCE_PATH_BYTES);
        assert!(!h.path.starts_with('/'), "{}", h.path);
    }
    Ok(())
}

#[test]
fn very_common_terms_only_find_candidates_when_nothing_rarer_does() {
    let terms: Vec<String> = ["river", "zx81", "absent"].iter().map(|t| t.to_string()).collect();
    // Small index: every present term searched.
    assert_eq!(match_terms(&terms, &[90, 1, 0], 100, 2_000), ["river", "zx81"]);
    // Large index, "river" in most chunks: left out while "zx81" is there.
    assert_eq!(match_terms(&terms, &[90_000, 1, 0], 100_000, 2_000), ["zx81"]);
    assert_eq!(match_terms(&terms, &[90_000, 0, 0], 100_000, 2_000), ["river"]);
    // Common but under half the chunks: kept.
    assert_eq!(match_terms(&terms, &[40_000, 1, 0], 100_000, 2_000), ["river", "zx81"]);
}
