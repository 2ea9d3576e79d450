//! The database: opening it safely, its schema and its migrations.

use std::{
    fs,
    io::ErrorKind,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::Path,
    time::Duration,
};

use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use crate::RagError;

/// The schema this build writes. Each entry of [`MIGRATIONS`] moves the version up by one.
pub(crate) const VERSION: i64 = 1;

/// Paths are stored as the OS's bytes (BLOB) so that names that are not UTF-8 still round-trip.
/// Chunk rowids are shared by `chunks` and the FTS5 table `terms`; `terms` is contentless
/// (the text lives in `chunks`) and `contentless_delete` lets a file's chunks be dropped.
const MIGRATIONS: &[&str] = &["
CREATE TABLE roots(
    id INTEGER PRIMARY KEY,
    path BLOB NOT NULL UNIQUE,
    name TEXT NOT NULL
);
CREATE TABLE files(
    id INTEGER PRIMARY KEY,
    root INTEGER NOT NULL REFERENCES roots(id),
    rel BLOB NOT NULL,
    size INTEGER NOT NULL,
    mtime INTEGER NOT NULL,
    ctime INTEGER NOT NULL,
    sha256 BLOB NOT NULL,
    chunks INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    UNIQUE(root, rel)
);
CREATE TABLE chunks(
    id INTEGER PRIMARY KEY,
    file INTEGER NOT NULL REFERENCES files(id),
    seq INTEGER NOT NULL,
    text TEXT NOT NULL,
    len INTEGER NOT NULL
);
CREATE INDEX chunks_by_file ON chunks(file);
CREATE TABLE skipped(
    root INTEGER NOT NULL REFERENCES roots(id),
    rel BLOB NOT NULL,
    size INTEGER NOT NULL,
    mtime INTEGER NOT NULL,
    ctime INTEGER NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY(root, rel)
);
CREATE VIRTUAL TABLE terms USING fts5(
    body, content='', contentless_delete=1, tokenize='ascii'
);
CREATE VIRTUAL TABLE vocab USING fts5vocab(terms, row);
"];

/// How long a statement waits for another process's write transaction (a `nova rag reindex`
/// beside a serving node) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens (creating it, its parent directories and its schema if needed) the index at `path`.
pub(crate) fn open(path: &Path) -> Result<Connection, RagError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // What the index holds is a digest of private documents: owner-only, like the rest of
        // the data dir.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| RagError::io(dir, e))?;
    }
    match fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(RagError::io(path, e)),
    }
    let conn = Connection::open(path).map_err(|e| classify(path, e.into()))?;
    setup(&conn).map_err(|e| classify(path, e))?;
    // SQLite gives its -wal and -shm files the database's mode; tighten a database an older
    // umask made readable by others.
    let mode = fs::metadata(path).map_err(|e| RagError::io(path, e))?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| RagError::io(path, e))?;
    }
    Ok(conn)
}

/// An in-memory index, for tests.
#[cfg(test)]
pub(crate) fn open_in_memory() -> Result<Connection, RagError> {
    let conn = Connection::open_in_memory()?;
    setup(&conn)?;
    Ok(conn)
}

fn setup(conn: &Connection) -> Result<(), RagError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL: a serving node reads while `nova rag reindex` writes, and a killed writer leaves a
    // log that the next open rolls back or replays. NORMAL sync loses nothing when a process
    // dies, only (the last transactions) when the machine does, which a reindex repairs.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(conn)
}

/// Brings the schema up to [`VERSION`]. Each step and its version bump are one transaction, so
/// a process killed while creating the database leaves an empty one, never half a schema.
fn migrate(conn: &Connection) -> Result<(), RagError> {
    let version = |c: &Connection| -> rusqlite::Result<i64> {
        c.pragma_query_value(None, "user_version", |r| r.get(0))
    };
    if version(conn)? == VERSION {
        return Ok(());
    }
    // IMMEDIATE: two processes opening a new index at once take turns; the second sees the
    // first one's schema.
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let found = version(&tx)?;
    if found > VERSION {
        return Err(RagError::Newer { found, supported: VERSION });
    }
    if found == 0 {
        let tables: i64 = tx.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
        if tables > 0 {
            return Err(RagError::Corrupt {
                path: conn.path().unwrap_or_default().into(),
                why: "an SQLite database, but not a nova index".into(),
            });
        }
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql).map_err(|e| match e.sqlite_error_code() {
            Some(ErrorCode::Unknown) if e.to_string().contains("fts5") => {
                RagError::NoFts5(e.to_string())
            }
            _ => e.into(),
        })?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()?;
    Ok(())
}

/// Names damage for what it is: SQLite's "not a database" and "malformed" become
/// [`RagError::Corrupt`], with the fix.
pub(crate) fn classify(path: &Path, e: RagError) -> RagError {
    match e {
        RagError::Sqlite(ref s)
            if matches!(
                s.sqlite_error_code(),
                Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
            ) =>
        {
            RagError::Corrupt { path: path.to_path_buf(), why: s.to_string() }
        }
        RagError::Corrupt { why, .. } => RagError::Corrupt { path: path.to_path_buf(), why },
        e => e,
    }
}
