//! The signed manifest (`<bundle>.sig`) and the rules a worker applies before downloading.

use std::{fs, path::Path};

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::{bundle, fsutil, key::public_key_hex, UpdateError};

/// The manifest format this crate writes and accepts.
pub const FORMAT: &str = "nova-swarm-bundle/1";
/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST: u64 = 16 * 1024;

/// A bundle's signed description. Every field but `key` and `signature` is covered by the
/// signature; `key` only helps the error message when a bundle was signed by the wrong key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The archive's file name, `nova-swarm-<version>.tgz`.
    pub file: String,
    /// The version inside.
    pub version: String,
    /// Release sequence: greater for every later release; a worker refuses any sequence not
    /// above the last one it applied.
    pub sequence: u64,
    /// Target triple of the binary inside.
    pub target: String,
    /// When the bundle was built.
    pub built_at_ms: u64,
    /// The archive's size in bytes.
    pub size: u64,
    /// The archive's sha256, hex.
    pub sha256: String,
    /// The signer's public key, hex (not trusted; see above).
    pub key: String,
    /// ed25519 signature over [`Manifest::signed_message`], hex.
    pub signature: String,
}

impl Manifest {
    /// The exact bytes the signature covers: one `name=value` line per field, in a fixed
    /// order, so nothing depends on how a JSON encoder orders or escapes things.
    pub fn signed_message(&self) -> Vec<u8> {
        format!(
            "{}\nfile={}\nversion={}\nsequence={}\ntarget={}\nbuilt_at_ms={}\nsize={}\nsha256={}\n",
            self.format,
            self.file,
            self.version,
            self.sequence,
            self.target,
            self.built_at_ms,
            self.size,
            self.sha256
        )
        .into_bytes()
    }

    /// Parses a manifest.
    pub fn from_json(bytes: &[u8]) -> Result<Self, UpdateError> {
        if bytes.len() as u64 > MAX_MANIFEST {
            return Err(UpdateError::TooLarge { what: "manifest".into(), limit: MAX_MANIFEST });
        }
        let m: Self =
            serde_json::from_slice(bytes).map_err(|e| UpdateError::BadManifest(e.to_string()))?;
        if m.format != FORMAT {
            return Err(UpdateError::BadManifest(format!(
                "format {:?}, expected {FORMAT:?}",
                m.format
            )));
        }
        // The file name is used as a path on the gateway: a plain name only.
        if m.file.is_empty() || m.file.contains('/') || m.file.starts_with('.') {
            return Err(UpdateError::BadManifest(format!("bad file name {:?}", m.file)));
        }
        Ok(m)
    }

    /// The manifest as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising a struct of strings and integers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a manifest file.
    pub fn read(path: &Path) -> Result<Self, UpdateError> {
        Self::from_json(&fsutil::read_small(path, MAX_MANIFEST)?)
    }

    /// Writes the manifest atomically.
    pub fn write(&self, path: &Path) -> Result<(), UpdateError> {
        fsutil::write_atomic(path, format!("{}\n", self.to_json()).as_bytes(), 0o644)
    }

    /// Checks the signature against `trusted` (and only it) and parses the version.
    pub fn verify(&self, trusted: &VerifyingKey) -> Result<Release, UpdateError> {
        let forged = || UpdateError::ForgedSignature {
            trusted: public_key_hex(trusted),
            claimed: self.key.clone(),
        };
        let bytes: [u8; 64] =
            hex::decode(&self.signature).ok().and_then(|b| b.try_into().ok()).ok_or_else(forged)?;
        trusted
            .verify_strict(&self.signed_message(), &Signature::from_bytes(&bytes))
            .map_err(|_| forged())?;
        let version = Version::parse(&self.version)
            .map_err(|_| UpdateError::BadVersion(self.version.clone()))?;
        Ok(Release { manifest: self.clone(), version })
    }
}

/// A manifest whose signature has been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The verified manifest.
    pub manifest: Manifest,
    /// Its version, parsed.
    pub version: Version,
}

impl Release {
    /// Checks that the archive at `path` is exactly the signed one: short is truncated, long is
    /// too large, different is a checksum mismatch. Reads at most one byte past the signed size.
    pub fn check_archive(&self, path: &Path) -> Result<(), UpdateError> {
        let want = self.manifest.size;
        let f = fs::File::open(path).map_err(|e| UpdateError::io(path, e))?;
        let (sha, size) = fsutil::digest_reader(std::io::Read::take(f, want + 1), want + 1, "")
            .map_err(|e| UpdateError::io(path, e))?;
        if size < want {
            return Err(UpdateError::Truncated { got: size, expected: want });
        }
        if size > want {
            return Err(UpdateError::TooLarge { what: "the archive".into(), limit: want });
        }
        if sha != self.manifest.sha256 {
            return Err(UpdateError::ChecksumMismatch {
                file: self.manifest.file.clone(),
                expected: self.manifest.sha256.clone(),
                actual: sha,
            });
        }
        Ok(())
    }
}

/// What a node accepts: its own target, sequences above the last applied, newer versions.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The version running now.
    pub running: Version,
    /// This binary's target triple.
    pub target: String,
    /// The last sequence applied here (0: none yet).
    pub applied_sequence: u64,
}

impl Policy {
    /// Refuses `release` unless it is for this target, not a replay, and strictly newer.
    /// The replay check comes before the version check: an old bundle is refused as a replay
    /// even when its version would be acceptable.
    pub fn check(&self, release: &Release) -> Result<(), UpdateError> {
        let m = &release.manifest;
        if m.target != self.target {
            return Err(UpdateError::WrongTarget {
                bundle: m.target.clone(),
                running: self.target.clone(),
            });
        }
        if m.sequence <= self.applied_sequence {
            return Err(UpdateError::Replay {
                offered: m.sequence,
                applied: self.applied_sequence,
            });
        }
        match release.version.cmp_precedence(&self.running) {
            std::cmp::Ordering::Greater => Ok(()),
            std::cmp::Ordering::Equal => {
                Err(UpdateError::SameVersion { offered: release.version.to_string() })
            }
            std::cmp::Ordering::Less => Err(UpdateError::Downgrade {
                offered: release.version.to_string(),
                running: self.running.to_string(),
            }),
        }
    }
}

/// sha256 (hex) and size of the file at `path`, refusing files over `limit` bytes.
pub fn archive_digest(path: &Path, limit: u64) -> Result<(String, u64), UpdateError> {
    let f = fs::File::open(path).map_err(|e| UpdateError::io(path, e))?;
    fsutil::digest_reader(std::io::Read::take(f, limit + 1), limit, "the archive").map_err(|e| {
        if e.kind() == std::io::ErrorKind::Other {
            UpdateError::TooLarge { what: path.display().to_string(), limit }
        } else {
            UpdateError::io(path, e)
        }
    })
}

/// Signs the bundle at `archive`: reads its `version.json`, hashes it, and returns the manifest
/// (the caller writes it beside the archive).
pub fn sign(
    archive: &Path,
    key: &SigningKey,
    limits: &bundle::Limits,
) -> Result<Manifest, UpdateError> {
    let info = bundle::read_version_info(archive, limits)?;
    let (sha256, size) = archive_digest(archive, limits.archive)?;
    let file = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| UpdateError::BadArchive("the archive path has no file name".into()))?;
    let mut m = Manifest {
        format: FORMAT.into(),
        file,
        version: info.version,
        sequence: info.sequence,
        target: info.target,
        built_at_ms: info.built_at_ms,
        size,
        sha256,
        key: public_key_hex(&key.verifying_key()),
        signature: String::new(),
    };
    m.signature = hex::encode(key.sign(&m.signed_message()).to_bytes());
    Ok(m)
}
