//! Staging, health checks, the atomic swap and rollback.
//!
//! Sequence: the new binary sits in a staging directory beside the executable (same
//! filesystem) → health check there → the current binary is hard-linked (or copied) to
//! `<exe>.prev` → the new one is renamed over `<exe>` → health check at `<exe>` → on failure
//! `<exe>.prev` is renamed back over `<exe>`. A rename is atomic, so `<exe>` is always a whole
//! binary, old or new.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use semver::Version;

use crate::{fsutil, UpdateError};

/// Most output kept from a health-check run.
const MAX_OUTPUT: u64 = 64 * 1024;

/// Runs `binary args` with a deadline; returns its stdout, or why it failed.
fn run(binary: &Path, args: &[&str], timeout: Duration) -> Result<String, String> {
    let mut child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{} {}`: {e}", binary.display(), args.join(" ")))?;
    // Readers drain the pipes so a chatty child cannot block on a full pipe.
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(p) = pipe {
                let mut p = p.take(MAX_OUTPUT);
                let _ = p.read_to_end(&mut out);
                let _ = std::io::copy(&mut p.into_inner(), &mut std::io::sink());
            }
            String::from_utf8_lossy(&out).into_owned()
        })
    };
    let out = reader(child.stdout.take().map(|p| Box::new(p) as _));
    let err = reader(child.stderr.take().map(|p| Box::new(p) as _));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`{}` did not finish within {timeout:?}", args.join(" ")));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("cannot wait for the health check: {e}")),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        let tail: String =
            stderr.trim().chars().rev().take(300).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(format!("`{}` exited with {status}: {tail}", args.join(" ")));
    }
    Ok(stdout)
}

/// Runs the new binary's health check: `<binary> version --json` must report `expected`, and
/// `<binary> self-check` must exit 0, each within `timeout`.
pub fn health_check(binary: &Path, expected: &Version, timeout: Duration) -> Result<(), String> {
    let out = run(binary, &["version", "--json"], timeout)?;
    let reported = serde_json::from_str::<serde_json::Value>(out.trim())
        .ok()
        .and_then(|v| v["version"].as_str().map(str::to_string))
        .ok_or_else(|| format!("`version --json` printed no version: {:?}", out.trim()))?;
    if reported != expected.to_string() {
        return Err(format!("it reports version {reported}, the bundle says {expected}"));
    }
    run(binary, &["self-check"], timeout)?;
    Ok(())
}

/// Installs binaries over one executable path.
#[derive(Debug, Clone)]
pub struct Installer {
    exe: PathBuf,
    timeout: Duration,
}

/// A successful install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The executable, now the new binary.
    pub exe: PathBuf,
    /// The previous binary.
    pub prev: PathBuf,
    /// The version installed.
    pub version: Version,
}

impl Installer {
    /// Installs over `exe` (the running executable's path, resolved before any swap).
    pub fn new(exe: impl Into<PathBuf>) -> Self {
        Self { exe: exe.into(), timeout: Duration::from_secs(30) }
    }

    /// Sets how long each health-check command may take.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The executable path.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// Where the previous binary is kept: `<exe>.prev`.
    pub fn prev(&self) -> PathBuf {
        let mut p = self.exe.clone().into_os_string();
        p.push(".prev");
        PathBuf::from(p)
    }

    fn dir(&self) -> &Path {
        match self.exe.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        }
    }

    /// A fresh staging directory beside the executable (removed when dropped).
    pub fn staging_dir(&self) -> Result<tempfile::TempDir, UpdateError> {
        let dir = self.dir();
        tempfile::Builder::new()
            .prefix(".nova-staging-")
            .tempdir_in(dir)
            .map_err(|e| UpdateError::io(dir, e))
    }

    /// Checks `staged` (a binary in [`Installer::staging_dir`]) and swaps it in; see the
    /// module doc for the sequence. On `Err`, the executable is the old binary.
    pub fn install(&self, staged: &Path, expected: &Version) -> Result<Installed, UpdateError> {
        health_check(staged, expected, self.timeout)
            .map_err(|reason| UpdateError::HealthCheck { binary: staged.to_path_buf(), reason })?;
        let prev = self.prev();
        self.keep_previous(&prev)?;
        fs::rename(staged, &self.exe).map_err(|e| UpdateError::io(&self.exe, e))?;
        fsutil::sync_dir(self.dir());
        if let Err(reason) = health_check(&self.exe, expected, self.timeout) {
            return match self.rollback() {
                Ok(()) => Err(UpdateError::RolledBack { reason }),
                Err(e) => {
                    Err(UpdateError::RollbackFailed { prev, reason: format!("{reason}; then {e}") })
                }
            };
        }
        Ok(Installed { exe: self.exe.clone(), prev, version: expected.clone() })
    }

    /// Copies the current executable to `prev`: a hard link when the filesystem allows (cheap,
    /// and `<exe>` never moves), else a copy; either way through a temporary name and a rename.
    fn keep_previous(&self, prev: &Path) -> Result<(), UpdateError> {
        let dir = self.dir();
        let tmp = dir.join(format!(".nova-prev-{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        if fs::hard_link(&self.exe, &tmp).is_err() {
            fs::copy(&self.exe, &tmp).map_err(|e| UpdateError::io(&tmp, e))?;
        }
        fs::rename(&tmp, prev).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            UpdateError::io(prev, e)
        })
    }

    /// Puts `<exe>.prev` back over `<exe>`.
    pub fn rollback(&self) -> Result<(), UpdateError> {
        let prev = self.prev();
        fs::rename(&prev, &self.exe).map_err(|e| UpdateError::io(&prev, e))?;
        fsutil::sync_dir(self.dir());
        Ok(())
    }
}
