//! Owner-only files and directories, whatever the umask.
//!
//! The data dir holds the API token, the swarm secret, the node key and the registry (which
//! names every worker and logs every request); nobody but its owner has any business reading
//! it. Modes are set explicitly rather than left to the umask, and files an older version
//! created with wider modes are tightened.

use std::{
    fs,
    io::{self, ErrorKind},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::Path,
};

/// Mode of private files.
pub const FILE_MODE: u32 = 0o600;
/// Mode of private directories.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` (and missing parents) with mode 0700, or tightens an existing `dir` to 0700
/// when its group or others may access it.
pub fn secure_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)?;
    tighten(dir, DIR_MODE)
}

/// Creates the empty file `path` with mode 0600 if it does not exist, or tightens it to 0600,
/// so whatever opens it next (SQLite) finds a private file.
pub(crate) fn create_private(path: &Path) -> io::Result<()> {
    match fs::OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => tighten(path, FILE_MODE),
        Err(e) => Err(e),
    }
}

/// Tightens `path` to 0600 if it exists.
pub(crate) fn restrict(path: &Path) -> io::Result<()> {
    match tighten(path, FILE_MODE) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Sets `mode` when the current one grants group or others anything; a mode that is already
/// tighter (say 0400) is left alone.
fn tighten(path: &Path, mode: u32) -> io::Result<()> {
    let current = fs::metadata(path)?.permissions().mode() & 0o777;
    if current & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RequestRecord, Store};

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    fn request() -> RequestRecord {
        RequestRecord {
            at_ms: 1,
            strategy: "race".into(),
            model: None,
            outcome: "ok".into(),
            latency_ms: 1.0,
            ttft_ms: None,
            tokens: 1,
            winner: None,
        }
    }

    /// The database, its WAL and its shared-memory file are all 0600 while the store is open.
    #[tokio::test]
    async fn the_database_and_its_wal_are_private() -> Result<(), crate::StoreError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        secure_dir(&data).expect("secure_dir");
        assert_eq!(mode(&data), 0o700);
        let db = data.join("nova.db");
        let store = Store::open(&db)?;
        store.log_request(request())?;
        store.flush().await?;
        let names: Vec<String> = fs::read_dir(&data)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        for name in ["nova.db", "nova.db-wal", "nova.db-shm"] {
            assert!(names.iter().any(|n| n == name), "{name} missing from {names:?}");
        }
        for name in names {
            assert_eq!(mode(&data.join(&name)), 0o600, "{name}");
        }
        Ok(())
    }

    /// Files and directories an older version left readable by others are tightened.
    #[tokio::test]
    async fn wide_modes_from_before_are_tightened() -> Result<(), crate::StoreError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        fs::create_dir(&data).expect("mkdir");
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).expect("chmod");
        let db = data.join("nova.db");
        // An older node, still running: its connection keeps the WAL and shm files in place.
        let older = rusqlite::Connection::open(&db)?;
        older.pragma_update(None, "journal_mode", "WAL")?;
        older.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")?;
        let files = ["nova.db", "nova.db-wal", "nova.db-shm"];
        for f in files {
            fs::set_permissions(data.join(f), fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        secure_dir(&data).expect("secure_dir");
        assert_eq!(mode(&data), 0o700);
        let store = Store::open(&db)?;
        store.flush().await?;
        for f in files {
            assert_eq!(mode(&data.join(f)), 0o600, "{f}");
        }
        drop(older);
        // A mode already tighter than 0600 is kept.
        let key = data.join("read-only");
        fs::write(&key, b"k").expect("write");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o400)).expect("chmod");
        restrict(&key).expect("restrict");
        assert_eq!(mode(&key), 0o400);
        Ok(())
    }
}
