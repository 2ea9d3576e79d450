//! Version stamps: a 64-byte trailer at the end of a binary naming the version it reports.
//!
//! The ELF loader ignores bytes after the last segment, so a stamped binary runs unchanged.
//! `nova bundle build --version V` stamps V into the copy it packages, and `nova version`
//! reports a stamp over the compiled-in version. For a real release the stamp repeats the
//! compiled version; tests use it to make a "newer" binary out of the single build they have.

use std::{
    fs,
    io::{Read, Seek as _, SeekFrom},
    path::Path,
};

use semver::Version;

/// Length of the trailer.
pub const LEN: usize = 64;
const MAGIC: &[u8; 12] = b"\0NOVA-STAMP1";

/// The trailer for `version`, or `None` if its text is too long to fit.
pub fn trailer(version: &Version) -> Option<[u8; LEN]> {
    let text = version.to_string();
    if text.len() > LEN - MAGIC.len() {
        return None;
    }
    let mut out = [0u8; LEN];
    out[..MAGIC.len()].copy_from_slice(MAGIC);
    out[MAGIC.len()..MAGIC.len() + text.len()].copy_from_slice(text.as_bytes());
    Some(out)
}

/// The version in a trailer, if `tail` (the last [`LEN`] bytes of a file) is one.
pub fn parse(tail: &[u8]) -> Option<Version> {
    let rest = tail.strip_prefix(MAGIC.as_slice())?;
    if tail.len() != LEN {
        return None;
    }
    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    Version::parse(std::str::from_utf8(&rest[..end]).ok()?).ok()
}

/// The stamped version of the binary at `path`, if it has one.
pub fn read(path: &Path) -> Option<Version> {
    let mut f = fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    if len < LEN as u64 {
        return None;
    }
    f.seek(SeekFrom::End(-(LEN as i64))).ok()?;
    let mut tail = [0u8; LEN];
    f.read_exact(&mut tail).ok()?;
    parse(&tail)
}

/// How many bytes of the file at `path` are the binary proper (its length without a stamp).
pub fn unstamped_len(path: &Path) -> std::io::Result<u64> {
    let len = fs::metadata(path)?.len();
    Ok(if read(path).is_some() { len - LEN as u64 } else { len })
}

/// The version a binary reports: its stamp, else `compiled`.
pub fn effective(path: Option<&Path>, compiled: &str) -> String {
    path.and_then(read).map(|v| v.to_string()).unwrap_or_else(|| compiled.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_roundtrip_and_replacement() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let bin = dir.path().join("bin");
        fs::write(&bin, b"#!/bin/sh\nexit 0\n")?;
        assert_eq!(read(&bin), None);
        assert_eq!(unstamped_len(&bin)?, 17);
        let v = Version::parse("1.2.3-rc.1")?;
        let mut bytes = fs::read(&bin)?;
        bytes.extend_from_slice(&trailer(&v).expect("fits"));
        fs::write(&bin, &bytes)?;
        assert_eq!(read(&bin), Some(v));
        assert_eq!(unstamped_len(&bin)?, 17);
        assert_eq!(effective(Some(&bin), "0.1.0"), "1.2.3-rc.1");
        assert_eq!(effective(None, "0.1.0"), "0.1.0");
        // Garbage tails are not stamps.
        assert_eq!(parse(&[0u8; LEN]), None);
        assert_eq!(parse(b"\0NOVA-STAMP1"), None);
        let too_long = Version::parse(&format!("1.0.0-{}", "a".repeat(60)))?;
        assert!(trailer(&too_long).is_none());
        Ok(())
    }
}
