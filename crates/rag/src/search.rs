//! Answering a [`KnowledgeQuery`]: candidates by FTS5's BM25, and the statistics that let the
//! gateway score them against other nodes' (see `nova_proto::knowledge`).

use nova_proto::knowledge::{
    query_terms, tokens, truncate_utf8, CorpusStats, KnowledgeHit, KnowledgeQuery, KnowledgeReply,
    MAX_HITS, MAX_SNIPPET_BYTES, MAX_SOURCE_PATH_BYTES,
};
use rusqlite::OptionalExtension as _;

use crate::{Index, RagError};

/// A term in more chunks than this, and in more than half of them, is left out of the
/// candidate search when the query has rarer terms. FTS5 ranks with every matching chunk
/// scored, so such a term would make each query score most of the index (about 270 ms at the
/// 200k-chunk bound), while its weight is nil: FTS5's BM25 gives a term in over half the chunks
/// no weight, so it only ever ranks chunks that hold none of the rarer terms, below all that
/// do. Hits are still scored (tf) on every term.
const COMMON_MIN_DF: u64 = 2_000;

/// The terms to find candidates by: those in at least one chunk, without the very common ones
/// (see [`COMMON_MIN_DF`]) unless nothing else is left.
fn match_terms<'a>(terms: &'a [String], df: &[u64], chunks: u64, common: u64) -> Vec<&'a str> {
    let present = || terms.iter().zip(df).filter(|(_, &d)| d > 0);
    let rare: Vec<&str> = present()
        .filter(|(_, &d)| d <= common || d * 2 <= chunks)
        .map(|(t, _)| t.as_str())
        .collect();
    if rare.is_empty() {
        present().map(|(t, _)| t.as_str()).collect()
    } else {
        rare
    }
}

pub(crate) fn run(index: &Index, q: &KnowledgeQuery) -> Result<KnowledgeReply, RagError> {
    let terms = query_terms(&q.query);
    let k = (q.k as usize).min(MAX_HITS);
    // One read transaction: the statistics and the hits come from the same snapshot even
    // while another process reindexes.
    let tx = index.conn.unchecked_transaction()?;
    let (chunks, total): (i64, i64) = tx.query_row(
        "SELECT coalesce(sum(chunks), 0), coalesce(sum(tokens), 0) FROM files",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut reply = KnowledgeReply {
        stats: CorpusStats {
            chunks: chunks as u64,
            tokens: total as u64,
            terms: terms.clone(),
            df: Vec::with_capacity(terms.len()),
        },
        hits: Vec::new(),
    };
    if terms.is_empty() || chunks == 0 {
        reply.stats.df = vec![0; terms.len()];
        return Ok(reply);
    }
    // Every query term's df, even for terms no hit holds: the gateway sums them over nodes.
    let mut df = tx.prepare_cached("SELECT doc FROM vocab WHERE term = ?1")?;
    for t in &terms {
        let d: Option<i64> = df.query_row([t], |r| r.get(0)).optional()?;
        reply.stats.df.push(d.unwrap_or(0) as u64);
    }
    if k == 0 {
        return Ok(reply);
    }
    let wanted = match_terms(&terms, &reply.stats.df, chunks as u64, COMMON_MIN_DF);
    if wanted.is_empty() {
        return Ok(reply);
    }
    // Every term quoted: nothing the user typed is FTS5 syntax.
    let matching = wanted
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" OR ");
    let ids: Vec<i64> = tx
        .prepare_cached("SELECT rowid FROM terms WHERE terms MATCH ?1 ORDER BY rank LIMIT ?2")?
        .query_map(rusqlite::params![matching, k as i64], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut chunk = tx.prepare_cached(
        "SELECT c.seq, c.text, c.len, f.rel, r.name
         FROM chunks c JOIN files f ON f.id = c.file JOIN roots r ON r.id = f.root
         WHERE c.id = ?1",
    )?;
    for id in ids {
        let row = chunk
            .query_row([id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .optional()?;
        let Some((seq, mut text, len, rel, root)) = row else { continue };
        let mut tf = vec![0u32; terms.len()];
        for t in tokens(&text) {
            if let Some(i) = terms.iter().position(|x| *x == t) {
                tf[i] += 1;
            }
        }
        let mut path = format!("{root}/{}", String::from_utf8_lossy(&rel));
        truncate_utf8(&mut path, MAX_SOURCE_PATH_BYTES);
        truncate_utf8(&mut text, MAX_SNIPPET_BYTES);
        reply.hits.push(KnowledgeHit { path, chunk: seq as u32, text, len: len as u32, tf });
    }
    Ok(reply)
}

#[cfg(test)]
mod tests;
