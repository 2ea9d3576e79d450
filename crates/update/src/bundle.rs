//! The bundle archive: building it, and extracting it under limits.

use std::{
    collections::HashMap,
    fs,
    io::{self, Read, Write as _},
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use flate2::{read::GzDecoder, write::GzEncoder, Compression};
use semver::Version;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::{fsutil, stamp, Release, UpdateError};

/// The binary's name inside a bundle.
pub const BINARY: &str = "nova";
/// The version file's name inside a bundle.
pub const VERSION_JSON: &str = "version.json";
/// The checksum file's name inside a bundle.
pub const SUMS: &str = "SHA256SUMS";

/// `version.json`: what the bundle holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// Semantic version of the binary.
    pub version: String,
    /// Target triple it was built for.
    pub target: String,
    /// When the bundle was built, ms since the Unix epoch.
    pub built_at_ms: u64,
    /// Release sequence (see [`crate::Manifest::sequence`]).
    pub sequence: u64,
}

/// Size limits applied while reading bundles. Reading stops at a limit; nothing larger is ever
/// buffered or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest archive downloaded or hashed.
    pub archive: u64,
    /// Largest binary extracted.
    pub binary: u64,
    /// Largest `version.json` or `SHA256SUMS`.
    pub small: u64,
}

impl Default for Limits {
    fn default() -> Self {
        // A debug build of nova is ~300 MB; release builds are half that.
        Self { archive: 1 << 30, binary: 1 << 30, small: 64 * 1024 }
    }
}

/// What `build` packages.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The binary to package.
    pub binary: PathBuf,
    /// The version to record (and stamp, with `stamp`).
    pub version: Version,
    /// Stamp `version` into the packaged binary (see [`crate::stamp`]).
    pub stamp: bool,
    /// Release sequence; must grow with every release.
    pub sequence: u64,
    /// Target triple of `binary`.
    pub target: String,
    /// Directory the archive is written to.
    pub out_dir: PathBuf,
    /// gzip level, 0–9 (6 is gzip's default; 1 packed nova 5.5x faster, 24 % larger).
    pub level: u32,
}

/// Builds `nova-swarm-<version>.tgz` in `opts.out_dir` and returns its path. Written to a
/// temporary file and renamed, so a failed build leaves no partial bundle.
pub fn build(opts: &BuildOptions) -> Result<(PathBuf, VersionInfo), UpdateError> {
    let bin = &opts.binary;
    let io_err = |e| UpdateError::io(bin, e);
    let body_len = stamp::unstamped_len(bin).map_err(io_err)?;
    let trailer = if opts.stamp {
        Some(stamp::trailer(&opts.version).ok_or_else(|| {
            UpdateError::BadVersion(format!("{} (too long to stamp)", opts.version))
        })?)
    } else {
        None
    };
    let tail: &[u8] = trailer.as_ref().map(|t| t.as_slice()).unwrap_or(&[]);
    let binary_reader = || -> io::Result<_> { Ok(fs::File::open(bin)?.take(body_len).chain(tail)) };
    let (bin_sha, bin_len) =
        fsutil::digest_reader(binary_reader().map_err(io_err)?, u64::MAX, "").map_err(io_err)?;

    let info = VersionInfo {
        version: opts.version.to_string(),
        target: opts.target.clone(),
        built_at_ms: crate::now_ms(),
        sequence: opts.sequence,
    };
    let info_json = serde_json::to_vec_pretty(&info).unwrap_or_default();
    let sums = format!(
        "{bin_sha}  {BINARY}\n{}  {VERSION_JSON}\n",
        hex::encode(Sha256::digest(&info_json))
    );

    let out = &opts.out_dir;
    fs::create_dir_all(out).map_err(|e| UpdateError::io(out, e))?;
    let dest = out.join(crate::bundle_file_name(&opts.version));
    let tmp = tempfile::Builder::new()
        .prefix(".nova-bundle-")
        .tempfile_in(out)
        .map_err(|e| UpdateError::io(out, e))?;
    let write = || -> io::Result<()> {
        let gz =
            GzEncoder::new(io::BufWriter::new(tmp.as_file()), Compression::new(opts.level.min(9)));
        let mut tar = tar::Builder::new(gz);
        let mtime = info.built_at_ms / 1000;
        let mut add = |name: &str, mode: u32, len: u64, data: &mut dyn Read| {
            let mut h = tar::Header::new_ustar();
            h.set_mode(mode);
            h.set_size(len);
            h.set_mtime(mtime);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, name, data)
        };
        add(VERSION_JSON, 0o644, info_json.len() as u64, &mut info_json.as_slice())?;
        add(SUMS, 0o644, sums.len() as u64, &mut sums.as_bytes())?;
        add(BINARY, 0o755, bin_len, &mut binary_reader()?)?;
        let mut w = tar.into_inner()?.finish()?;
        w.flush()?;
        drop(w);
        // Published files: readable by the gateway whoever runs it.
        tmp.as_file().set_permissions(fs::Permissions::from_mode(0o644))?;
        tmp.as_file().sync_all()
    };
    write().map_err(|e| UpdateError::io(tmp.path(), e))?;
    tmp.persist(&dest).map_err(|e| UpdateError::io(&dest, e.error))?;
    fsutil::sync_dir(out);
    Ok((dest, info))
}

fn archive_err(e: io::Error) -> UpdateError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        UpdateError::BadArchive(format!("truncated archive ({e})"))
    } else {
        UpdateError::BadArchive(e.to_string())
    }
}

/// Checks an entry's header and returns its name (one of the three allowed).
fn check_entry<R: Read>(entry: &tar::Entry<'_, R>) -> Result<&'static str, UpdateError> {
    let raw = entry.path_bytes();
    let name = String::from_utf8_lossy(&raw).into_owned();
    if name.starts_with('/') || name.split('/').any(|c| c == "..") {
        return Err(UpdateError::BadArchive(format!("path traversal in entry {name:?}")));
    }
    let ty = entry.header().entry_type();
    if !ty.is_file() {
        return Err(UpdateError::BadArchive(format!(
            "entry {name:?} is a {ty:?}; only regular files are allowed"
        )));
    }
    match name.as_str() {
        BINARY => Ok(BINARY),
        VERSION_JSON => Ok(VERSION_JSON),
        SUMS => Ok(SUMS),
        _ => Err(UpdateError::BadArchive(format!("unexpected entry {name:?}"))),
    }
}

fn read_small<R: Read>(entry: &mut R, name: &str, limit: u64) -> Result<Vec<u8>, UpdateError> {
    let mut buf = Vec::new();
    entry.take(limit + 1).read_to_end(&mut buf).map_err(archive_err)?;
    if buf.len() as u64 > limit {
        return Err(UpdateError::TooLarge { what: name.into(), limit });
    }
    Ok(buf)
}

/// Reads `version.json` out of a bundle (used when signing).
pub(crate) fn read_version_info(
    archive: &Path,
    limits: &Limits,
) -> Result<VersionInfo, UpdateError> {
    let f = fs::File::open(archive).map_err(|e| UpdateError::io(archive, e))?;
    let mut tar = tar::Archive::new(GzDecoder::new(io::BufReader::new(f)));
    for entry in tar.entries().map_err(archive_err)? {
        let mut entry = entry.map_err(archive_err)?;
        if check_entry(&entry)? == VERSION_JSON {
            let bytes = read_small(&mut entry, VERSION_JSON, limits.small)?;
            return serde_json::from_slice(&bytes)
                .map_err(|e| UpdateError::BadArchive(format!("bad {VERSION_JSON}: {e}")));
        }
    }
    Err(UpdateError::BadArchive(format!("no {VERSION_JSON}")))
}

/// A bundle unpacked and checked.
#[derive(Debug)]
pub struct Extracted {
    /// The binary, mode 0755, in the staging directory.
    pub binary: PathBuf,
    /// Its `version.json`.
    pub info: VersionInfo,
}

/// Unpacks the bundle `archive` into `staging` (an empty directory) and checks it: only the
/// three regular files, within `limits`; every checksum in `SHA256SUMS` matches; `version.json`
/// agrees with the signed `release`. The archive itself should already have passed
/// [`Release::check_archive`].
pub fn extract(
    archive: &Path,
    staging: &Path,
    limits: &Limits,
    release: &Release,
) -> Result<Extracted, UpdateError> {
    let f = fs::File::open(archive).map_err(|e| UpdateError::io(archive, e))?;
    let mut tar = tar::Archive::new(GzDecoder::new(io::BufReader::new(f.take(limits.archive))));
    let bin_path = staging.join(BINARY);
    let mut small: HashMap<&str, Vec<u8>> = HashMap::new();
    let mut bin_sha = None;
    for entry in tar.entries().map_err(archive_err)? {
        let mut entry = entry.map_err(archive_err)?;
        let name = check_entry(&entry)?;
        if small.contains_key(name) || (name == BINARY && bin_sha.is_some()) {
            return Err(UpdateError::BadArchive(format!("duplicate entry {name:?}")));
        }
        if name != BINARY {
            small.insert(name, read_small(&mut entry, name, limits.small)?);
            continue;
        }
        if entry.size() > limits.binary {
            return Err(UpdateError::TooLarge { what: BINARY.into(), limit: limits.binary });
        }
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o700)
            .open(&bin_path)
            .map_err(|e| UpdateError::io(&bin_path, e))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        let mut limited = (&mut entry).take(limits.binary + 1);
        loop {
            let got = limited.read(&mut buf).map_err(archive_err)?;
            if got == 0 {
                break;
            }
            n += got as u64;
            if n > limits.binary {
                return Err(UpdateError::TooLarge { what: BINARY.into(), limit: limits.binary });
            }
            h.update(&buf[..got]);
            out.write_all(&buf[..got]).map_err(|e| UpdateError::io(&bin_path, e))?;
        }
        out.sync_all().map_err(|e| UpdateError::io(&bin_path, e))?;
        bin_sha = Some(hex::encode(h.finalize()));
    }
    let missing: Vec<&str> = [BINARY, VERSION_JSON, SUMS]
        .into_iter()
        .filter(|n| if *n == BINARY { bin_sha.is_none() } else { !small.contains_key(n) })
        .collect();
    let (Some(bin_sha), Some(info_bytes), Some(sums)) =
        (bin_sha, small.get(VERSION_JSON), small.get(SUMS))
    else {
        return Err(UpdateError::BadArchive(format!("missing {}", missing.join(", "))));
    };

    let listed = parse_sums(sums)?;
    for (name, actual) in
        [(BINARY, bin_sha), (VERSION_JSON, hex::encode(Sha256::digest(info_bytes)))]
    {
        let expected = listed
            .get(name)
            .ok_or_else(|| UpdateError::BadArchive(format!("{SUMS} does not list {name}")))?;
        if *expected != actual {
            return Err(UpdateError::ChecksumMismatch {
                file: name.into(),
                expected: expected.clone(),
                actual,
            });
        }
    }
    let info: VersionInfo = serde_json::from_slice(info_bytes)
        .map_err(|e| UpdateError::BadArchive(format!("bad {VERSION_JSON}: {e}")))?;
    let m = &release.manifest;
    if (info.version.as_str(), info.sequence, info.target.as_str())
        != (m.version.as_str(), m.sequence, m.target.as_str())
    {
        return Err(UpdateError::ManifestMismatch(format!(
            "{VERSION_JSON} says {} (sequence {}, {}), the manifest {} (sequence {}, {})",
            info.version, info.sequence, info.target, m.version, m.sequence, m.target
        )));
    }
    fs::set_permissions(&bin_path, fs::Permissions::from_mode(0o755))
        .map_err(|e| UpdateError::io(&bin_path, e))?;
    Ok(Extracted { binary: bin_path, info })
}

fn parse_sums(bytes: &[u8]) -> Result<HashMap<String, String>, UpdateError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| UpdateError::BadArchive(format!("{SUMS} is not text")))?;
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (sum, name) = line
            .split_once("  ")
            .or_else(|| line.split_once(" *"))
            .ok_or_else(|| UpdateError::BadArchive(format!("bad {SUMS} line {line:?}")))?;
        if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(UpdateError::BadArchive(format!("bad {SUMS} line {line:?}")));
        }
        out.insert(name.to_string(), sum.to_ascii_lowercase());
    }
    Ok(out)
}
