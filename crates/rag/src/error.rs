//! Why an index operation failed.

use std::path::PathBuf;

/// Why an [`Index`](crate::Index) operation failed. A failed operation leaves the database as
/// it was before that operation's last transaction: never half-updated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RagError {
    /// SQLite refused (disk full, the database locked by another writer for too long, …).
    #[error("index database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file is not an index this program can read (garbage bytes, a truncated or damaged
    /// database). Nothing was changed; deleting the file and adding the roots again rebuilds it.
    #[error(
        "{path} is not a usable knowledge index ({why}); delete it and add the directories again"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        why: String,
    },
    /// The index was written by a newer nova with a schema this one does not know.
    #[error("the knowledge index has schema version {found}, newer than this nova's {supported}; upgrade nova")]
    Newer {
        /// The file's schema version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// This SQLite build lacks FTS5, which the index needs.
    #[error("this SQLite build has no FTS5 full-text search: {0}")]
    NoFts5(String),
    /// A file or directory could not be created, inspected or read.
    #[error("{path}: {source}")]
    Io {
        /// What was being accessed.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A root must be a directory (not a file, not a symbolic link's target that is a file).
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    /// The index already holds [`MAX_ROOTS`](crate::MAX_ROOTS) roots.
    #[error("the index already holds {0} directories, its limit")]
    TooManyRoots(usize),
    /// The directory was never added.
    #[error("{0} is not an indexed directory")]
    UnknownRoot(PathBuf),
}

impl RagError {
    /// A stable name for the error, for metrics and API bodies.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Corrupt { .. } => "corrupt",
            Self::Newer { .. } => "newer_schema",
            Self::NoFts5(_) => "no_fts5",
            Self::Io { .. } => "io",
            Self::NotADirectory(_) => "not_a_directory",
            Self::TooManyRoots(_) => "too_many_roots",
            Self::UnknownRoot(_) => "unknown_root",
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
