//! A file writer that rotates daily and caps both each file's size and the number of files.
//!
//! tracing-appender's `RollingFileAppender` rotates by time and can keep the last N files, but it
//! cannot cap a file's size (size-based rotation is still an open request upstream), and one
//! chatty day on a phone must not fill its storage. So this writer keeps one file per UTC day,
//! starts a new part of the day when a file reaches its size cap, and deletes all but the newest
//! files of its own name pattern in its own directory. Disk use is therefore bounded by
//! `max_files × max_bytes` (plus at most one line). It sits behind tracing-appender's bounded
//! non-blocking writer, so it runs on that writer's thread and never blocks the node.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// After a write fails (disk full, directory removed), file logging pauses this long instead of
/// retrying, and warning, on every line.
const RETRY_AFTER: Duration = Duration::from_secs(60);
/// Most parts tried for one day before giving up on the files; only reachable if someone
/// pre-fills the directory with full files.
const MAX_PARTS: u32 = 10_000;

/// How much disk the files may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// A file is closed and the next part started once it holds this many bytes.
    pub(crate) max_bytes: u64,
    /// Only this many files (of this writer's pattern) are kept; older ones are deleted.
    pub(crate) max_files: usize,
}

/// Days since 1970-01-01, UTC.
type Clock = Box<dyn Fn() -> i64 + Send>;

/// Writes `<dir>/<stem>.<YYYY-MM-DD>[.<part>].<ext>`.
pub(crate) struct RollingFile {
    dir: PathBuf,
    stem: &'static str,
    ext: &'static str,
    limits: Limits,
    clock: Clock,
    current: Option<Current>,
    paused_until: Option<Instant>,
}

struct Current {
    day: i64,
    part: u32,
    name: String,
    file: File,
    written: u64,
}

impl RollingFile {
    /// Creates `dir` if needed and opens today's file, so that an unwritable directory is found
    /// at start-up rather than on the first line.
    pub(crate) fn open(
        dir: &Path,
        stem: &'static str,
        ext: &'static str,
        limits: Limits,
    ) -> io::Result<Self> {
        Self::open_with_clock(dir, stem, ext, limits, Box::new(utc_day_now))
    }

    fn open_with_clock(
        dir: &Path,
        stem: &'static str,
        ext: &'static str,
        limits: Limits,
        clock: Clock,
    ) -> io::Result<Self> {
        // Logs name peers and requests; they are nobody else's business.
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let mut w = Self {
            dir: dir.to_path_buf(),
            stem,
            ext,
            limits: Limits {
                max_bytes: limits.max_bytes.max(1),
                max_files: limits.max_files.max(1),
            },
            clock,
            current: None,
            paused_until: None,
        };
        let today = (w.clock)();
        w.roll(today)?;
        Ok(w)
    }

    fn name(&self, day: i64, part: u32) -> String {
        let date = date(day);
        match part {
            0 => format!("{}.{date}.{}", self.stem, self.ext),
            n => format!("{}.{date}.{n}.{}", self.stem, self.ext),
        }
    }

    /// `(date, part)` of a file of ours, which sorts oldest first; `None` for anything else.
    fn parse(&self, name: &str) -> Option<(String, u32)> {
        let mid = name.strip_prefix(self.stem)?.strip_prefix('.')?;
        let mid = mid.strip_suffix(self.ext)?.strip_suffix('.')?;
        let (date, part) = match mid.split_once('.') {
            Some((d, p)) if !p.starts_with('0') => (d, p.parse().ok()?),
            Some(_) => return None,
            None => (mid, 0),
        };
        let is_date = date.len() == 10
            && date.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                _ => b.is_ascii_digit(),
            });
        is_date.then(|| (date.to_owned(), part))
    }

    /// Our files in the directory, oldest first.
    fn ours(&self) -> io::Result<Vec<((String, u32), String)>> {
        let mut files: Vec<_> = fs::read_dir(&self.dir)?
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| Some((self.parse(&n)?, n)))
            .collect();
        files.sort();
        Ok(files)
    }

    /// Switches to the next file with room for `day`: the next part of the current file on the
    /// same day, else the newest existing part of that day (a restart appends), else part 0.
    fn roll(&mut self, day: i64) -> io::Result<()> {
        let mut part = match &self.current {
            Some(c) if c.day == day => c.part + 1,
            _ => {
                let d = date(day);
                self.ours()?
                    .iter()
                    .filter(|((fd, _), _)| *fd == d)
                    .map(|((_, p), _)| *p)
                    .max()
                    .unwrap_or(0)
            }
        };
        self.current = None;
        while part < MAX_PARTS {
            let name = self.name(day, part);
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(self.dir.join(&name))?;
            let written = file.metadata()?.len();
            if written < self.limits.max_bytes {
                self.current = Some(Current { day, part, name, file, written });
                self.prune()?;
                return Ok(());
            }
            part += 1;
        }
        Err(io::Error::other(format!("{MAX_PARTS} full log files for one day")))
    }

    /// Deletes our oldest files beyond `max_files`, never the one being written.
    fn prune(&self) -> io::Result<()> {
        let files = self.ours()?;
        let excess = files.len().saturating_sub(self.limits.max_files);
        let current = self.current.as_ref().map(|c| c.name.as_str());
        for (_, name) in files.iter().take(excess).filter(|(_, n)| Some(n.as_str()) != current) {
            match fs::remove_file(self.dir.join(name)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    fn try_write(&mut self, buf: &[u8]) -> io::Result<()> {
        let day = (self.clock)();
        let len = buf.len() as u64;
        let full = |c: &Current| c.written > 0 && c.written + len > self.limits.max_bytes;
        if self.current.as_ref().is_none_or(|c| c.day != day || full(c)) {
            self.roll(day)?;
        }
        let Some(c) = self.current.as_mut() else { return Err(io::Error::other("no log file")) };
        c.file.write_all(buf)?;
        c.written += len;
        Ok(())
    }
}

impl Write for RollingFile {
    /// Never fails: a log line that cannot be written is dropped, with one warning on stderr
    /// per failure, and file logging resumes after [`RETRY_AFTER`]. Logging must not take the
    /// node down, and the non-blocking writer in front has nobody to return an error to.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.paused_until.is_some_and(|t| Instant::now() < t) {
            return Ok(buf.len());
        }
        self.paused_until = None;
        if let Err(e) = self.try_write(buf) {
            self.current = None;
            self.paused_until = Some(Instant::now() + RETRY_AFTER);
            // Not through tracing: this runs inside the subscriber.
            eprintln!(
                "warning: cannot write log files in {}: {e}; retrying in {} s",
                self.dir.display(),
                RETRY_AFTER.as_secs()
            );
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.current.as_mut() {
            Some(c) => c.file.flush(),
            None => Ok(()),
        }
    }
}

fn utc_day_now() -> i64 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    i64::try_from(secs / 86_400).unwrap_or(0)
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
fn date(days: i64) -> String {
    let (year, month, day) = nova_proto::calendar::civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests;
