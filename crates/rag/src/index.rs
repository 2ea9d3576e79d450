//! [`Index`]: the handle to one index database, and the roots it covers.

use std::{
    ffi::OsStr,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use nova_proto::knowledge::{KnowledgeQuery, KnowledgeReply, KnowledgeSummary};
use rusqlite::{params, Connection, OptionalExtension as _, TransactionBehavior::Immediate};

use crate::{schema, IndexEvent, IndexReport, Limits, RagError, RootInfo};

/// A local document index: one SQLite connection. Not `Sync`; a shared index wraps it in a
/// mutex. Several processes may open the same file: one writes at a time (each file's update is
/// a short transaction), and readers never wait for it.
#[derive(Debug)]
pub struct Index {
    pub(crate) conn: Connection,
    path: PathBuf,
    pub(crate) limits: Limits,
}

/// A registered root.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    pub(crate) id: i64,
    pub(crate) path: PathBuf,
    pub(crate) name: String,
}

impl Index {
    /// Opens the index at `path`, creating the file (mode 0600), its parent directories (0700)
    /// and the schema if needed, with the default [`Limits`]. A database left by a killed
    /// process opens (SQLite rolls its log back or forward); a file that is not an index is
    /// [`RagError::Corrupt`]. Blocking.
    pub fn open(path: &Path) -> Result<Self, RagError> {
        Self::open_with(path, Limits::default())
    }

    /// [`Index::open`] with other bounds.
    pub fn open_with(path: &Path, limits: Limits) -> Result<Self, RagError> {
        Ok(Self { conn: schema::open(path)?, path: path.to_path_buf(), limits })
    }

    /// An index in memory, for tests.
    #[cfg(test)]
    pub(crate) fn in_memory(limits: Limits) -> Result<Self, RagError> {
        Ok(Self { conn: schema::open_in_memory()?, path: PathBuf::from(":memory:"), limits })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bounds it keeps.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Adds the directory `dir` (its canonical path: links in `dir` itself are resolved, the
    /// user named them) and returns that path. Adding a root again changes nothing. Files are
    /// read by the next [`Index::reindex`].
    pub fn add_root(&mut self, dir: &Path) -> Result<PathBuf, RagError> {
        let canonical = dir.canonicalize().map_err(|e| RagError::io(dir, e))?;
        let meta = std::fs::metadata(&canonical).map_err(|e| RagError::io(dir, e))?;
        if !meta.is_dir() {
            return Err(RagError::NotADirectory(dir.to_path_buf()));
        }
        let run = || -> Result<PathBuf, RagError> {
            if self.root_id(&canonical)?.is_some() {
                return Ok(canonical.clone());
            }
            let count: i64 = self.conn.query_row("SELECT count(*) FROM roots", [], |r| r.get(0))?;
            if count as usize >= self.limits.max_roots {
                return Err(RagError::TooManyRoots(self.limits.max_roots));
            }
            let name = canonical
                .file_name()
                .map_or_else(|| "root".into(), |n| n.to_string_lossy().into_owned());
            self.conn.execute(
                "INSERT OR IGNORE INTO roots(path, name) VALUES (?1, ?2)",
                params![canonical.as_os_str().as_bytes(), name],
            )?;
            Ok(canonical.clone())
        };
        run().map_err(|e| self.classify(e))
    }

    /// Removes the root `dir` and everything indexed from it, in one transaction. `dir` need
    /// not exist any more. Returns whether it was a root.
    pub fn remove_root(&mut self, dir: &Path) -> Result<bool, RagError> {
        let path = resolve(dir);
        let run = |this: &mut Self| -> Result<bool, RagError> {
            let Some(id) = this.root_id(&path)? else { return Ok(false) };
            let tx = this.conn.transaction_with_behavior(Immediate)?;
            tx.execute(
                "DELETE FROM terms WHERE rowid IN
                   (SELECT c.id FROM chunks c JOIN files f ON f.id = c.file WHERE f.root = ?1)",
                [id],
            )?;
            tx.execute(
                "DELETE FROM chunks WHERE file IN (SELECT id FROM files WHERE root = ?1)",
                [id],
            )?;
            tx.execute("DELETE FROM files WHERE root = ?1", [id])?;
            tx.execute("DELETE FROM skipped WHERE root = ?1", [id])?;
            tx.execute("DELETE FROM roots WHERE id = ?1", [id])?;
            tx.commit()?;
            Ok(true)
        };
        run(self).map_err(|e| self.classify(e))
    }

    /// The roots, in the order they were added, with what the index holds from each.
    pub fn roots(&self) -> Result<Vec<RootInfo>, RagError> {
        let run = || -> Result<Vec<RootInfo>, RagError> {
            let mut stmt = self.conn.prepare(
                "SELECT r.path,
                   (SELECT count(*) FROM files WHERE root = r.id),
                   (SELECT coalesce(sum(chunks), 0) FROM files WHERE root = r.id),
                   (SELECT coalesce(sum(size), 0) FROM files WHERE root = r.id),
                   (SELECT count(*) FROM skipped WHERE root = r.id)
                 FROM roots r ORDER BY r.id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(RootInfo {
                    path: PathBuf::from(OsStr::from_bytes(&r.get::<_, Vec<u8>>(0)?)),
                    files: r.get::<_, i64>(1)? as u64,
                    chunks: r.get::<_, i64>(2)? as u64,
                    bytes: r.get::<_, i64>(3)? as u64,
                    skipped: r.get::<_, i64>(4)? as u64,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        };
        run().map_err(|e| self.classify(e))
    }

    /// Brings the index up to date with the disk: every root, or only `root`. Files whose size
    /// and times are unchanged are not read; each changed file is replaced in one transaction,
    /// so a run that is killed keeps what it did and the next run does the rest. `on` hears of
    /// each change as it is committed. Blocking; may take long on a big root.
    pub fn reindex(
        &mut self,
        root: Option<&Path>,
        on: &mut dyn FnMut(&IndexEvent),
    ) -> Result<IndexReport, RagError> {
        crate::reindex::run(self, root, on).map_err(|e| self.classify(e))
    }

    /// The best `q.k` (at most [`MAX_HITS`](nova_proto::knowledge::MAX_HITS)) chunks for
    /// `q.query` by BM25, with the statistics the gateway needs to score them against other
    /// nodes' hits. A query without terms, or an empty index, gives no hits. Blocking.
    pub fn search(&self, q: &KnowledgeQuery) -> Result<KnowledgeReply, RagError> {
        crate::search::run(self, q).map_err(|e| self.classify(e))
    }

    /// Files and chunks indexed.
    pub fn summary(&self) -> Result<KnowledgeSummary, RagError> {
        let run = || -> Result<KnowledgeSummary, RagError> {
            let (files, chunks) = self.conn.query_row(
                "SELECT count(*), coalesce(sum(chunks), 0) FROM files",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )?;
            Ok(KnowledgeSummary { files: files as u64, chunks: chunks as u64 })
        };
        run().map_err(|e| self.classify(e))
    }

    /// Bytes the database uses (free pages not counted): what [`MAX_INDEX_BYTES`](crate::MAX_INDEX_BYTES)
    /// bounds.
    pub fn used_bytes(&self) -> Result<u64, RagError> {
        let q = |p: &str| self.conn.pragma_query_value(None, p, |r| r.get::<_, i64>(0));
        let run = || -> Result<u64, RagError> {
            Ok((q("page_count")? - q("freelist_count")?).max(0) as u64 * q("page_size")? as u64)
        };
        run().map_err(|e| self.classify(e))
    }

    /// Every root, or only the one at `only` ([`RagError::UnknownRoot`] if it is none).
    pub(crate) fn root_list(&self, only: Option<&Path>) -> Result<Vec<Root>, RagError> {
        let mut stmt = self.conn.prepare("SELECT id, path, name FROM roots ORDER BY id")?;
        let all = stmt
            .query_map([], |r| {
                Ok(Root {
                    id: r.get(0)?,
                    path: PathBuf::from(OsStr::from_bytes(&r.get::<_, Vec<u8>>(1)?)),
                    name: r.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        match only {
            None => Ok(all),
            Some(dir) => {
                let want = resolve(dir);
                let found: Vec<Root> = all.into_iter().filter(|r| r.path == want).collect();
                if found.is_empty() {
                    return Err(RagError::UnknownRoot(dir.to_path_buf()));
                }
                Ok(found)
            }
        }
    }

    fn root_id(&self, path: &Path) -> Result<Option<i64>, RagError> {
        Ok(self
            .conn
            .query_row("SELECT id FROM roots WHERE path = ?1", [path.as_os_str().as_bytes()], |r| {
                r.get(0)
            })
            .optional()?)
    }

    fn classify(&self, e: RagError) -> RagError {
        schema::classify(&self.path, e)
    }
}

/// How a root is named on the command line: its canonical path if it still exists, else the
/// path made absolute, so a directory deleted from disk can still be removed from the index.
fn resolve(dir: &Path) -> PathBuf {
    dir.canonicalize().unwrap_or_else(|_| std::path::absolute(dir).unwrap_or(dir.to_path_buf()))
}

#[cfg(test)]
mod tests;
