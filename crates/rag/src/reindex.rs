//! Bringing the index up to date with the disk, one file per transaction.

use std::{
    collections::{HashMap, HashSet},
    ffi::OsStr,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use nova_proto::knowledge::tokens;
use rusqlite::{
    params, Connection, OptionalExtension as _, Transaction, TransactionBehavior::Immediate,
};

use crate::{
    chunk,
    index::Root,
    read::{self, Read},
    walk::{self, Stamp},
    Index, IndexEvent, IndexReport, RagError, SkipReason,
};

/// What the manifest says about an indexed file.
struct Known {
    stamp: Stamp,
    sha256: Vec<u8>,
    chunks: u64,
}

pub(crate) fn run(
    index: &mut Index,
    only: Option<&Path>,
    on: &mut dyn FnMut(&IndexEvent),
) -> Result<IndexReport, RagError> {
    let roots = index.root_list(only)?;
    let mut report = IndexReport::default();
    let mut total: i64 =
        index.conn.query_row("SELECT coalesce(sum(chunks), 0) FROM files", [], |r| r.get(0))?;
    for root in &roots {
        report.roots += 1;
        one_root(index, root, &mut total, &mut report, on)?;
    }
    Ok(report)
}

fn one_root(
    index: &mut Index,
    root: &Root,
    total: &mut i64,
    report: &mut IndexReport,
    on: &mut dyn FnMut(&IndexEvent),
) -> Result<(), RagError> {
    let limits = index.limits;
    let show = |rel: &Path| format!("{}/{}", root.name, rel.to_string_lossy());
    let known = load_known(&index.conn, root.id)?;
    let skipped = load_skipped(&index.conn, root.id)?;
    // symlink_metadata: a root that was replaced by a link is not followed either.
    let is_dir = std::fs::symlink_metadata(&root.path).is_ok_and(|m| m.is_dir());
    let walk = if is_dir {
        walk::walk(&root.path, &limits)
    } else {
        on(&IndexEvent::RootMissing { root: root.path.clone() });
        walk::Walk::default()
    };
    for what in &walk.limits {
        on(&IndexEvent::Limit { root: root.path.clone(), what: what.clone() });
    }
    let present: HashSet<&Path> = walk
        .files
        .iter()
        .map(|f| f.rel.as_path())
        .chain(walk.skipped.iter().map(|(rel, _, _)| rel.as_path()))
        .collect();
    // Forgetting first frees room for what the walk found, when the index is full.
    for (rel, k) in &known {
        if !present.contains(rel.as_path()) && forget(&mut index.conn, root.id, rel)? {
            *total -= k.chunks as i64;
            report.removed += 1;
            on(&IndexEvent::Removed { path: show(rel) });
        }
    }
    for rel in skipped.keys().filter(|r| !present.contains(r.as_path())) {
        let params = params![root.id, rel_bytes(rel)];
        index.conn.execute("DELETE FROM skipped WHERE root = ?1 AND rel = ?2", params)?;
    }
    for (rel, stamp, reason) in &walk.skipped {
        if skipped.get(rel) == Some(stamp) {
            report.still_skipped += 1;
        } else if record_skip(&mut index.conn, root.id, rel, *stamp, reason)? {
            report.skipped += 1;
            on(&IndexEvent::Skipped { path: show(rel), reason: reason.clone() });
        }
    }
    let mut over_limit = 0u64;
    for found in &walk.files {
        report.seen += 1;
        let old = known.get(&found.rel);
        if old.is_some_and(|k| k.stamp == found.stamp) {
            report.unchanged += 1;
            continue;
        }
        if skipped.get(&found.rel) == Some(&found.stamp) {
            report.still_skipped += 1;
            continue;
        }
        report.read += 1;
        let (text, sha256, stamp) = match read::read(&root.path, found, limits.max_file_bytes) {
            Read::Moved => continue,
            Read::Skip(reason, stamp) => {
                if !record_skip(&mut index.conn, root.id, &found.rel, stamp, &reason)? {
                    return Ok(());
                }
                if let Some(k) = old {
                    *total -= k.chunks as i64;
                }
                report.skipped += 1;
                tracing::debug!(path = %show(&found.rel), %reason, "skipped");
                on(&IndexEvent::Skipped { path: show(&found.rel), reason });
                continue;
            }
            Read::Text { text, sha256, stamp } => (text, sha256, stamp),
        };
        if old.is_some_and(|k| k.sha256 == sha256) {
            let tx = index.conn.transaction_with_behavior(Immediate)?;
            tx.execute(
                "UPDATE files SET size = ?3, mtime = ?4, ctime = ?5 WHERE root = ?1 AND rel = ?2",
                params![
                    root.id,
                    rel_bytes(&found.rel),
                    stamp.size as i64,
                    stamp.mtime,
                    stamp.ctime
                ],
            )?;
            tx.commit()?;
            report.touched += 1;
            continue;
        }
        let mut chunks = chunk::chunks(found.kind, &text);
        let truncated = chunks.len() > limits.max_chunks_per_file;
        chunks.truncate(limits.max_chunks_per_file);
        let before = old.map_or(0, |k| k.chunks as i64);
        let after = *total - before + chunks.len() as i64;
        if after as u64 > limits.max_total_chunks || index.used_bytes()? >= limits.max_index_bytes {
            // Not recorded: once there is room, the next run reads it again.
            over_limit += 1;
            continue;
        }
        let file = File { root: root.id, rel: &found.rel, stamp, sha256: &sha256 };
        if !replace(&mut index.conn, &file, &chunks)? {
            return Ok(());
        }
        *total = after;
        let (path, n) = (show(&found.rel), chunks.len() as u32);
        tracing::debug!(%path, chunks = n, "indexed");
        on(&match old {
            Some(_) => IndexEvent::Updated { path: path.clone(), chunks: n },
            None => IndexEvent::Added { path: path.clone(), chunks: n },
        });
        if truncated {
            on(&IndexEvent::Truncated { path, kept: n });
        }
        match old {
            Some(_) => report.updated += 1,
            None => report.added += 1,
        }
    }
    if over_limit > 0 {
        report.over_limit += over_limit;
        on(&IndexEvent::Limit {
            root: root.path.clone(),
            what: format!(
                "{over_limit} files not indexed: the index is full ({} chunks or {} bytes at most)",
                limits.max_total_chunks, limits.max_index_bytes
            ),
        });
    }
    Ok(())
}

fn rel_bytes(rel: &Path) -> &[u8] {
    rel.as_os_str().as_bytes()
}

fn load_known(conn: &Connection, root: i64) -> Result<HashMap<PathBuf, Known>, RagError> {
    let mut stmt =
        conn.prepare("SELECT rel, size, mtime, ctime, sha256, chunks FROM files WHERE root = ?1")?;
    let rows = stmt.query_map([root], |r| {
        let rel = PathBuf::from(OsStr::from_bytes(&r.get::<_, Vec<u8>>(0)?));
        let stamp = Stamp { size: r.get::<_, i64>(1)? as u64, mtime: r.get(2)?, ctime: r.get(3)? };
        Ok((rel, Known { stamp, sha256: r.get(4)?, chunks: r.get::<_, i64>(5)? as u64 }))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn load_skipped(conn: &Connection, root: i64) -> Result<HashMap<PathBuf, Stamp>, RagError> {
    let mut stmt = conn.prepare("SELECT rel, size, mtime, ctime FROM skipped WHERE root = ?1")?;
    let rows = stmt.query_map([root], |r| {
        let rel = PathBuf::from(OsStr::from_bytes(&r.get::<_, Vec<u8>>(0)?));
        Ok((rel, Stamp { size: r.get::<_, i64>(1)? as u64, mtime: r.get(2)?, ctime: r.get(3)? }))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every write transaction here is IMMEDIATE: it takes the write lock when it begins (waiting
/// up to the busy timeout for another writer), where a deferred one would fail at once on
/// its first write if another process had committed since it began reading.
///
/// A transaction on a root that is still registered, or `None` if another process removed it
/// meanwhile (then there is nothing left to update).
fn begin(conn: &mut Connection, root: i64) -> Result<Option<Transaction<'_>>, RagError> {
    let tx = conn.transaction_with_behavior(Immediate)?;
    let exists: bool =
        tx.query_row("SELECT EXISTS(SELECT 1 FROM roots WHERE id = ?1)", [root], |r| r.get(0))?;
    Ok(exists.then_some(tx))
}

/// Drops the chunks of file `id` (its terms first: they are found through the chunks).
fn drop_chunks(tx: &Transaction<'_>, file: i64) -> Result<(), RagError> {
    tx.prepare_cached("DELETE FROM terms WHERE rowid IN (SELECT id FROM chunks WHERE file = ?1)")?
        .execute([file])?;
    tx.prepare_cached("DELETE FROM chunks WHERE file = ?1")?.execute([file])?;
    Ok(())
}

fn file_id(tx: &Transaction<'_>, root: i64, rel: &Path) -> Result<Option<i64>, RagError> {
    Ok(tx
        .prepare_cached("SELECT id FROM files WHERE root = ?1 AND rel = ?2")?
        .query_row(params![root, rel_bytes(rel)], |r| r.get(0))
        .optional()?)
}

/// Records that `rel` is skipped as of `stamp`, dropping what was indexed of it. `false` if the
/// root is gone.
fn record_skip(
    conn: &mut Connection,
    root: i64,
    rel: &Path,
    stamp: Stamp,
    reason: &SkipReason,
) -> Result<bool, RagError> {
    let Some(tx) = begin(conn, root)? else { return Ok(false) };
    if let Some(id) = file_id(&tx, root, rel)? {
        drop_chunks(&tx, id)?;
        tx.execute("DELETE FROM files WHERE id = ?1", [id])?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO skipped(root, rel, size, mtime, ctime, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            root,
            rel_bytes(rel),
            stamp.size as i64,
            stamp.mtime,
            stamp.ctime,
            reason.to_string()
        ],
    )?;
    tx.commit()?;
    Ok(true)
}

/// Drops a file gone from disk. `false` if it was not indexed (any more).
fn forget(conn: &mut Connection, root: i64, rel: &Path) -> Result<bool, RagError> {
    let tx = conn.transaction_with_behavior(Immediate)?;
    let Some(id) = file_id(&tx, root, rel)? else { return Ok(false) };
    drop_chunks(&tx, id)?;
    tx.execute("DELETE FROM files WHERE id = ?1", [id])?;
    tx.commit()?;
    Ok(true)
}

/// A file version about to be indexed.
struct File<'a> {
    root: i64,
    rel: &'a Path,
    stamp: Stamp,
    sha256: &'a [u8; 32],
}

/// Replaces whatever was indexed of `file` by `chunks`, in one transaction. `false` if the root
/// is gone.
fn replace(conn: &mut Connection, file: &File<'_>, chunks: &[String]) -> Result<bool, RagError> {
    let Some(tx) = begin(conn, file.root)? else { return Ok(false) };
    if let Some(id) = file_id(&tx, file.root, file.rel)? {
        drop_chunks(&tx, id)?;
    }
    let terms: Vec<Vec<String>> = chunks.iter().map(|c| tokens(c).collect()).collect();
    let count: usize = terms.iter().map(Vec::len).sum();
    let s = file.stamp;
    let id: i64 = tx.query_row(
        "INSERT INTO files(root, rel, size, mtime, ctime, sha256, chunks, tokens)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT(root, rel) DO UPDATE SET size = excluded.size, mtime = excluded.mtime,
           ctime = excluded.ctime, sha256 = excluded.sha256, chunks = excluded.chunks,
           tokens = excluded.tokens
         RETURNING id",
        params![
            file.root,
            rel_bytes(file.rel),
            s.size as i64,
            s.mtime,
            s.ctime,
            &file.sha256[..],
            chunks.len() as i64,
            count as i64
        ],
        |r| r.get(0),
    )?;
    for (seq, (text, terms)) in chunks.iter().zip(&terms).enumerate() {
        tx.prepare_cached("INSERT INTO chunks(file, seq, text, len) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![id, seq as i64, text, terms.len() as i64])?;
        let chunk = tx.last_insert_rowid();
        tx.prepare_cached("INSERT INTO terms(rowid, body) VALUES (?1, ?2)")?
            .execute(params![chunk, terms.join(" ")])?;
    }
    tx.execute(
        "DELETE FROM skipped WHERE root = ?1 AND rel = ?2",
        params![file.root, rel_bytes(file.rel)],
    )?;
    tx.commit()?;
    Ok(true)
}
