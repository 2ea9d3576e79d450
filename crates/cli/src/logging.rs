//! Logging: human-readable lines on stderr for every command and, for the long-running ones
//! (`serve`, `worker`), two files under `<data dir>/logs/`: `nova.<date>.log` (the same lines,
//! without colour) and `nova.<date>.jsonl` (one JSON object per event, for machines).
//!
//! stderr follows `--log`/`NOVA_LOG`; the files follow `--file-log`/`NOVA_LOG_FILE`, so a node can
//! keep a quiet terminal and a useful record. Files rotate daily (UTC) and are capped in size and
//! number ([`rolling`]). They are written through tracing-appender's non-blocking writer: a
//! bounded queue that drops lines rather than stall the node when the disk is slow, flushed when
//! the [`Logging`] guard is dropped at the end of `main`. A logs directory that cannot be
//! written never fails the command: one warning, and stderr only.

mod rolling;

use std::{
    io::IsTerminal as _,
    path::{Path, PathBuf},
};

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{
    fmt, layer::SubscriberExt as _, util::SubscriberInitExt as _, EnvFilter, Layer, Registry,
};

use self::rolling::{Limits, RollingFile};

/// Default filter of the log files. llama.cpp logs hundreds of lines at info while loading a
/// model, hence its own level.
pub(crate) const DEFAULT_FILE_FILTER: &str = "info,llama-cpp-2=warn";

/// Each file is closed at this size and the next part of the day begun.
const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Files kept per kind (text, JSON); with the size cap, at most 2 × 10 × 8 MiB on disk.
const MAX_FILES: usize = 10;
/// Lines queued for a file writer before new ones are dropped: bounds memory if the disk stalls.
const QUEUED_LINES: usize = 16 * 1024;

/// What to log where.
pub(crate) struct Settings<'a> {
    /// Filter for stderr, e.g. `warn`.
    pub(crate) stderr_filter: &'a str,
    /// Filter for the files.
    pub(crate) file_filter: &'a str,
    /// The logs directory, or `None` for a command that writes no log files.
    pub(crate) dir: Option<PathBuf>,
}

/// Keeps the file writers' threads alive: hold it until `main` returns. Dropping it logs a last
/// line and flushes everything queued.
#[must_use = "dropping it stops the log files"]
pub(crate) struct Logging {
    workers: Vec<WorkerGuard>,
}

impl Drop for Logging {
    fn drop(&mut self) {
        if !self.workers.is_empty() {
            // Marks a clean stop in the files (a crash leaves no such line); written before the
            // worker guards below flush and stop.
            tracing::info!("nova stopped");
        }
    }
}

/// Installs the global subscriber. Never fails: bad filters fall back to defaults with a
/// warning, and unwritable log files leave stderr alone.
pub(crate) fn init(settings: Settings<'_>) -> Logging {
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_filter(filter("--log/NOVA_LOG", settings.stderr_filter, "warn"))
        .boxed()];
    let mut workers = Vec::new();
    let dir = settings.dir.and_then(|dir| match open_files(&dir) {
        Ok(((text, text_guard), (json, json_guard))) => {
            let file_filter = || filter("--file-log/NOVA_LOG_FILE", settings.file_filter, "info");
            layers.push(
                fmt::layer().with_ansi(false).with_writer(text).with_filter(file_filter()).boxed(),
            );
            layers.push(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(json)
                    .with_filter(file_filter())
                    .boxed(),
            );
            workers.extend([text_guard, json_guard]);
            Some(dir)
        }
        Err(e) => {
            eprintln!(
                "warning: cannot write log files in {}: {e}; logging to stderr only",
                dir.display()
            );
            None
        }
    });
    // Only fails if a subscriber is already installed, which main does not do.
    let _ = tracing_subscriber::registry().with(layers).try_init();
    if let Some(dir) = dir {
        tracing::info!(version = env!("CARGO_PKG_VERSION"), dir = %dir.display(), "nova started");
    }
    Logging { workers }
}

type Writer = (NonBlocking, WorkerGuard);

fn open_files(dir: &Path) -> std::io::Result<(Writer, Writer)> {
    let limits = Limits { max_bytes: MAX_FILE_BYTES, max_files: MAX_FILES };
    let text = RollingFile::open(dir, "nova", "log", limits)?;
    let json = RollingFile::open(dir, "nova", "jsonl", limits)?;
    let writer = |name: &str, file: RollingFile| {
        NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(QUEUED_LINES)
            .thread_name(name)
            .finish(file)
    };
    Ok((writer("nova-log-text", text), writer("nova-log-json", json)))
}

fn filter(what: &str, spec: &str, fallback: &str) -> EnvFilter {
    EnvFilter::try_new(spec).unwrap_or_else(|e| {
        eprintln!("warning: invalid {what} filter {spec:?} ({e}); using {fallback:?}");
        EnvFilter::new(fallback)
    })
}
