//! Why an update was refused or failed.

use std::path::{Path, PathBuf};

/// Why a bundle could not be built, signed, verified or applied. Every refusal leaves the
/// running binary in place; [`UpdateError::RolledBack`] says the swap happened and was undone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// A file could not be read or written. Nothing was installed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A key file or key string is unusable.
    #[error("release key {what}: {reason}")]
    BadKey {
        /// Which key (a path or "given on the command line").
        what: String,
        /// Why.
        reason: String,
    },
    /// The manifest is not a well-formed signed manifest (before any signature check).
    #[error("malformed bundle manifest: {0}")]
    BadManifest(String),
    /// The signature does not verify against the trusted release key: the bundle was signed
    /// by someone else, or its manifest was altered after signing.
    #[error("forged or altered bundle: its signature does not verify against the trusted release key {trusted} (the manifest names key {claimed})")]
    ForgedSignature {
        /// The key the worker trusts, hex.
        trusted: String,
        /// The key the manifest claims, hex (informational only).
        claimed: String,
    },
    /// The bundle is for another platform.
    #[error("bundle is built for {bundle}, this node runs {running}")]
    WrongTarget {
        /// The bundle's target triple.
        bundle: String,
        /// This binary's target triple.
        running: String,
    },
    /// The bundle's version is older than the running one.
    #[error("downgrade refused: bundle version {offered} is older than the running {running}")]
    Downgrade {
        /// The bundle's version.
        offered: String,
        /// The running version.
        running: String,
    },
    /// The bundle's version is the running one.
    #[error("bundle version {offered} is the running version; nothing to do")]
    SameVersion {
        /// The version.
        offered: String,
    },
    /// The bundle's sequence is not newer than the last applied one: an old, validly signed
    /// bundle played back.
    #[error("replay refused: bundle sequence {offered} is not newer than the last applied sequence {applied}")]
    Replay {
        /// The bundle's sequence.
        offered: u64,
        /// The last sequence this node applied.
        applied: u64,
    },
    /// Something exceeds its size limit; reading stopped at the limit.
    #[error("{what} exceeds its limit of {limit} bytes")]
    TooLarge {
        /// What.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// The download ended early.
    #[error("truncated download: got {got} of {expected} bytes")]
    Truncated {
        /// Bytes received.
        got: u64,
        /// Bytes the signed manifest announced.
        expected: u64,
    },
    /// A sha256 differs from the signed or listed one: the archive or a file in it was altered.
    #[error("checksum mismatch for {file}: expected {expected}, got {actual}")]
    ChecksumMismatch {
        /// The archive or the file inside it.
        file: String,
        /// The signed or listed sha256.
        expected: String,
        /// The sha256 of the bytes at hand.
        actual: String,
    },
    /// The archive is not a well-formed bundle (not gzip, truncated, unexpected entries, links
    /// or paths, missing files).
    #[error("bad bundle archive: {0}")]
    BadArchive(String),
    /// `version.json` inside the archive disagrees with the signed manifest.
    #[error("bundle contents disagree with the signed manifest: {0}")]
    ManifestMismatch(String),
    /// The new binary failed its health check before the swap; nothing was installed.
    #[error("the new binary {} failed its health check: {reason}", binary.display())]
    HealthCheck {
        /// The binary checked.
        binary: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The new binary was swapped in, failed its health check at its final path, and the
    /// previous binary was put back.
    #[error("the new binary failed its health check after the swap ({reason}); rolled back to the previous binary")]
    RolledBack {
        /// What went wrong.
        reason: String,
    },
    /// Rolling back failed too: the executable may be the new (unhealthy) binary. The previous
    /// one is still at `prev`.
    #[error("rollback failed ({reason}); the previous binary is at {}", prev.display())]
    RollbackFailed {
        /// The previous binary.
        prev: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Fetching the archive failed (the gateway could not be reached, no longer has the
    /// bundle, or stalled). Worth retrying later.
    #[error("download failed: {0}")]
    Download(String),
    /// A version string is not semver.
    #[error("{0:?} is not a semantic version (e.g. 1.2.3)")]
    BadVersion(String),
}

impl UpdateError {
    /// A stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::BadKey { .. } => "bad_key",
            Self::BadManifest(_) => "bad_manifest",
            Self::ForgedSignature { .. } => "forged_signature",
            Self::WrongTarget { .. } => "wrong_target",
            Self::Downgrade { .. } => "downgrade",
            Self::SameVersion { .. } => "same_version",
            Self::Replay { .. } => "replay",
            Self::TooLarge { .. } => "too_large",
            Self::Truncated { .. } => "truncated",
            Self::ChecksumMismatch { .. } => "checksum_mismatch",
            Self::BadArchive(_) => "bad_archive",
            Self::ManifestMismatch(_) => "manifest_mismatch",
            Self::HealthCheck { .. } => "health_check",
            Self::RolledBack { .. } => "rolled_back",
            Self::RollbackFailed { .. } => "rollback_failed",
            Self::Download(_) => "download",
            Self::BadVersion(_) => "bad_version",
        }
    }

    /// Whether trying the same bundle again could succeed (a broken transfer, a full disk),
    /// as opposed to a verdict on the bundle itself.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Io { .. } | Self::Truncated { .. } | Self::Download(_))
    }

    /// An [`UpdateError::Io`] for `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }
}
