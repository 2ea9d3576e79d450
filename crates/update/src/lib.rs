//! Signed self-update bundles: build, sign, verify, stage, swap atomically, roll back.
//!
//! # Format
//! - A bundle is `nova-swarm-<version>.tgz`, a gzipped tar of exactly three regular files:
//!   `nova` (the binary), `version.json` ([`VersionInfo`]: version, target triple, build time,
//!   release sequence) and `SHA256SUMS` (`<hex>  <name>` lines for the other two).
//! - Its signature is a small JSON [`Manifest`] beside it, `nova-swarm-<version>.tgz.sig`: the
//!   archive's file name, size and sha256, its version, sequence and target, and an ed25519
//!   signature by the release key over exactly those fields ([`Manifest::signed_message`]).
//!   Because the manifest is small and signed, a worker checks the signature, the version and
//!   the sequence *before* it downloads anything.
//!
//! # Rules a worker applies ([`Policy`])
//! 1. the signature verifies against the release key the worker trusts (never the key the
//!    manifest names);
//! 2. the target triple is the worker's own;
//! 3. the sequence is greater than the last one applied (persisted in [`UpdateState`]): a
//!    replayed old bundle is refused even when its version would pass;
//! 4. the version is strictly newer than the running one: downgrades and reinstalls are refused;
//! 5. the downloaded archive has the signed size and sha256 (a short download is "truncated");
//! 6. the archive holds exactly the three files, each within [`Limits`], no links, no paths;
//!    every checksum in `SHA256SUMS` matches, and `version.json` agrees with the manifest.
//!
//! # Applying ([`Installer`])
//! The binary is extracted into a staging directory next to the running executable (same
//! filesystem, so the swap is a rename), run as `<new> version --json` and `<new> self-check`
//! with a timeout, then swapped in: the current binary is hard-linked to `<exe>.prev`, the new
//! one renamed over `<exe>`. The health check runs again at the final path; if it fails, the
//! previous binary is renamed back. At no point is `<exe>` missing or half-written.
//!
//! # Versions
//! [`stamp`]: `nova bundle build --version V` stamps V into the packaged copy of the binary (a
//! 64-byte trailer the loader ignores), and a stamped binary reports V. Real releases bundle a
//! binary compiled at V, where the stamp merely repeats it; tests use it to make a "newer"
//! binary out of the one build they have.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod bundle;
mod error;
mod fsutil;
mod install;
mod key;
mod manifest;
mod shelf;
pub mod stamp;
mod state;

pub use bundle::{
    build, extract, BuildOptions, Extracted, Limits, VersionInfo, BINARY, SUMS, VERSION_JSON,
};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use error::UpdateError;
pub use install::{health_check, Installed, Installer};
pub use key::{
    load_or_create_release_key, parse_public_key, public_key_hex, read_trusted_key, RELEASE_KEY,
    RELEASE_PUB, TRUSTED_RELEASE_PUB,
};
pub use manifest::{archive_digest, sign, Manifest, Policy, Release, FORMAT, MAX_MANIFEST};
pub use semver::Version;
pub use shelf::{Published, Shelf};
pub use state::{UpdateState, STATE_FILE};

/// The target triple this crate (and so the binary linking it) was compiled for.
pub const TARGET: &str = env!("NOVA_UPDATE_TARGET");

/// `nova-swarm-<version>.tgz`.
pub fn bundle_file_name(version: &Version) -> String {
    format!("nova-swarm-{version}.tgz")
}

/// `nova-swarm-<version>.tgz.sig`, the signed manifest beside a bundle.
pub fn manifest_file_name(version: &Version) -> String {
    format!("{}.sig", bundle_file_name(version))
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
