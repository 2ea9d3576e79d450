//! The gateway's shelf of published bundles: a directory of `*.tgz` with their `*.tgz.sig`.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{Manifest, UpdateError};

/// A bundle ready to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Its signed manifest.
    pub manifest: Manifest,
    /// The manifest exactly as it is on disk (what workers verify).
    pub manifest_json: String,
    /// The archive.
    pub archive: PathBuf,
}

/// A directory of bundles. The latest is the one with the highest sequence; the gateway does
/// not verify signatures (workers do, against the key they trust). Scans are cached briefly so
/// that many workers' heartbeats do not each read the directory.
#[derive(Debug)]
pub struct Shelf {
    dir: PathBuf,
    cache: Mutex<Option<(Instant, Option<Published>)>>,
    ttl: Duration,
}

impl Shelf {
    /// A shelf over `dir` (which need not exist yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), cache: Mutex::new(None), ttl: Duration::from_millis(500) }
    }

    /// Sets how long a scan is reused (default 500 ms).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The latest published bundle, if any. Unreadable manifests are skipped (and logged by
    /// the caller through [`Shelf::scan`] if it wants the reasons).
    pub fn latest(&self) -> Option<Published> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, latest)) = cache.as_ref() {
            if at.elapsed() < self.ttl {
                return latest.clone();
            }
        }
        let latest = self.scan().0;
        *cache = Some((Instant::now(), latest.clone()));
        latest
    }

    /// Reads the directory: the latest bundle, and the manifests that could not be used.
    pub fn scan(&self) -> (Option<Published>, Vec<(PathBuf, UpdateError)>) {
        let mut best: Option<Published> = None;
        let mut bad = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return (None, bad);
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.to_string_lossy().ends_with(".tgz.sig") {
                continue;
            }
            let read = crate::fsutil::read_small(&path, crate::manifest::MAX_MANIFEST)
                .and_then(|bytes| Ok((Manifest::from_json(&bytes)?, bytes)));
            match read {
                Ok((manifest, bytes)) => {
                    let archive = self.dir.join(&manifest.file);
                    if !archive.is_file() {
                        let e = std::io::Error::new(std::io::ErrorKind::NotFound, "no archive");
                        bad.push((path, UpdateError::io(&archive, e)));
                        continue;
                    }
                    if best.as_ref().is_none_or(|b| manifest.sequence > b.manifest.sequence) {
                        let manifest_json = String::from_utf8_lossy(&bytes).into_owned();
                        best = Some(Published { manifest, manifest_json, archive });
                    }
                }
                Err(e) => bad.push((path, e)),
            }
        }
        (best, bad)
    }
}
