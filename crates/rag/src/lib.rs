//! A node's local document index: the files under the directories its owner opted in,
//! chunked by headings and paragraphs and searched with BM25.
//!
//! # Storage
//! One SQLite database (WAL) holds everything: the roots, a manifest of every file (size,
//! mtime, ctime, sha256), the chunks' text and an FTS5 index of their terms. Because the
//! manifest and the index are in one database, each file's replacement is one transaction: a
//! process killed at any point leaves a database that opens and answers, whose manifest never
//! claims a file is indexed when its chunks are not, and the next [`Index::reindex`] repairs
//! whatever the killed run did not reach. FTS5 rather than tantivy: BM25 is built in, the
//! transactional manifest comes for free, and SQLite is already in the build (nova-store).
//!
//! # Terms
//! Every count here (a chunk's length, term frequencies, document frequencies) uses
//! [`nova_proto::knowledge::tokens`], the tokenizer the gateway uses to re-score hits from
//! several nodes. FTS5 is fed those tokens joined by spaces and splits them with its `ascii`
//! tokenizer, which treats every non-ASCII character as part of a word: it therefore sees
//! exactly our terms, where `unicode61` would split words at combining marks that
//! [`char::is_alphanumeric`] keeps.
//!
//! # Files
//! Text (`.txt`, `.text`), Markdown (`.md`, `.markdown`) and HTML (`.html`, `.htm`). PDF is not
//! read: the established pure-Rust extractor, `pdf-extract` (on `lopdf`), brings about 260k
//! lines of dependencies into a CI budget that is nearly spent and still misses the text of many
//! real PDFs (fonts without ToUnicode maps), and the newer ones are first releases of a few
//! months' standing. Converting PDFs to text first (`pdftotext`) serves better.
//!
//! Hidden files and directories (a name starting with `.`) are skipped, as ripgrep does: they
//! are version-control and tool state, not documents.
//!
//! # Privacy
//! Only files under added roots are read. Symbolic links are never followed, neither to files
//! nor to directories, and a file is opened with `O_NOFOLLOW` and checked to be the very inode
//! the walk saw, so a link swapped in between cannot make the index read outside a root. Hits
//! name a file by its root's directory name and its path inside the root, never by its
//! absolute path.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod chunk;
mod error;
mod html;
mod index;
mod markdown;
mod read;
mod reindex;
mod schema;
mod search;
mod walk;

use std::path::PathBuf;

pub use error::RagError;
pub use index::Index;

/// Largest file read, in bytes; bigger files are skipped (and reported once).
pub const MAX_FILE_BYTES: u64 = 4 << 20;
/// Most chunks kept from one file; the rest of a longer file is not indexed (reported once).
pub const MAX_CHUNKS_PER_FILE: usize = 4096;
/// Most chunks in the whole index; files that would exceed it are not indexed.
pub const MAX_TOTAL_CHUNKS: u64 = 200_000;
/// Most indexable files taken from one root per walk, in name order; the rest are ignored.
pub const MAX_FILES_PER_ROOT: usize = 50_000;
/// Most directory entries of any kind one root's walk looks at, so a root added by mistake
/// (a home directory full of build trees) cannot keep the walk busy for hours.
pub const MAX_WALK_ENTRIES: usize = 500_000;
/// Deepest directory descended into below a root (the root's own files are depth 1).
pub const MAX_DEPTH: usize = 32;
/// Largest the database may grow, in bytes; files that arrive once it is this big are not
/// indexed.
pub const MAX_INDEX_BYTES: u64 = 1 << 30;
/// Most roots one index holds.
pub const MAX_ROOTS: usize = 64;

/// The bounds an [`Index`] keeps. [`Limits::default`] is the constants above; tests and
/// constrained devices may lower them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// See [`MAX_FILE_BYTES`].
    pub max_file_bytes: u64,
    /// See [`MAX_CHUNKS_PER_FILE`].
    pub max_chunks_per_file: usize,
    /// See [`MAX_TOTAL_CHUNKS`].
    pub max_total_chunks: u64,
    /// See [`MAX_FILES_PER_ROOT`].
    pub max_files_per_root: usize,
    /// See [`MAX_WALK_ENTRIES`].
    pub max_walk_entries: usize,
    /// See [`MAX_DEPTH`].
    pub max_depth: usize,
    /// See [`MAX_INDEX_BYTES`].
    pub max_index_bytes: u64,
    /// See [`MAX_ROOTS`].
    pub max_roots: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_bytes: MAX_FILE_BYTES,
            max_chunks_per_file: MAX_CHUNKS_PER_FILE,
            max_total_chunks: MAX_TOTAL_CHUNKS,
            max_files_per_root: MAX_FILES_PER_ROOT,
            max_walk_entries: MAX_WALK_ENTRIES,
            max_depth: MAX_DEPTH,
            max_index_bytes: MAX_INDEX_BYTES,
            max_roots: MAX_ROOTS,
        }
    }
}

/// One added directory and what the index holds from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootInfo {
    /// Its canonical absolute path.
    pub path: PathBuf,
    /// Files indexed.
    pub files: u64,
    /// Chunks indexed.
    pub chunks: u64,
    /// Bytes of the indexed files.
    pub bytes: u64,
    /// Files (and directories) skipped, with the reason stored.
    pub skipped: u64,
}

/// Why a file (or directory) is not indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// Bigger than the file size bound.
    TooLarge {
        /// Its size.
        size: u64,
        /// The bound.
        max: u64,
    },
    /// Holds NUL bytes, or is mostly not UTF-8: not a text file.
    Binary,
    /// Could not be opened or read (permission denied, an I/O error, replaced mid-walk).
    Unreadable(String),
    /// A directory deeper than the depth bound.
    TooDeep,
}

impl SkipReason {
    /// A stable name for the reason, for logs and the database.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Binary => "binary",
            Self::Unreadable(_) => "unreadable",
            Self::TooDeep => "too_deep",
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge { size, max } => write!(f, "too large ({size} bytes, limit {max})"),
            Self::Binary => f.write_str("binary (not UTF-8 text)"),
            Self::Unreadable(why) => write!(f, "unreadable: {why}"),
            Self::TooDeep => f.write_str("directory nested too deep"),
        }
    }
}

/// Something [`Index::reindex`] did, as it happens. Paths are `<root name>/<relative path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexEvent {
    /// A new file was indexed.
    Added {
        /// The file.
        path: String,
        /// Its chunks.
        chunks: u32,
    },
    /// A file's content changed and its chunks were replaced.
    Updated {
        /// The file.
        path: String,
        /// Its chunks now.
        chunks: u32,
    },
    /// A file is gone from disk (or from the walk: moved under a hidden or too deep directory)
    /// and its chunks were dropped.
    Removed {
        /// The file.
        path: String,
    },
    /// A file is newly skipped, or skipped again after it changed. Reported once per version.
    Skipped {
        /// The file or directory.
        path: String,
        /// Why.
        reason: SkipReason,
    },
    /// A file has more chunks than the per-file bound; only the first ones are indexed.
    Truncated {
        /// The file.
        path: String,
        /// Chunks kept.
        kept: u32,
    },
    /// A bound of the whole index or walk stopped some files from being indexed: the text says
    /// which. Reported on every run that hits it, since it is the index's state, not a file's.
    Limit {
        /// The root concerned.
        root: PathBuf,
        /// What happened.
        what: String,
    },
    /// A root is no longer a directory; its files were dropped from the index (it stays
    /// registered, and is indexed again once it is back).
    RootMissing {
        /// The root.
        root: PathBuf,
    },
}

/// What one [`Index::reindex`] did, in totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexReport {
    /// Roots walked.
    pub roots: u64,
    /// Indexable files found on disk.
    pub seen: u64,
    /// Files left alone because their size and times had not changed (not read).
    pub unchanged: u64,
    /// Files read: new, changed, or with new times.
    pub read: u64,
    /// New files indexed.
    pub added: u64,
    /// Files whose chunks were replaced.
    pub updated: u64,
    /// Files read whose content turned out unchanged (only their times were updated).
    pub touched: u64,
    /// Files dropped from the index.
    pub removed: u64,
    /// Files newly skipped (each also reported as an [`IndexEvent::Skipped`]).
    pub skipped: u64,
    /// Files still skipped, unchanged since they were reported.
    pub still_skipped: u64,
    /// Files not indexed because a bound of the whole index was reached.
    pub over_limit: u64,
}
