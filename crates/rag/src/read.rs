//! Reading one file the walk found: only that very file, only up to the size bound, only if it
//! is text.

use std::{
    fs,
    io::Read as _,
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    path::Path,
};

use sha2::{Digest as _, Sha256};

use crate::{
    walk::{Found, Stamp},
    SkipReason,
};

/// Share of characters that may fail to decode as UTF-8 (and become U+FFFD) before a file is
/// called binary rather than text with a few stray Latin-1 bytes.
const MAX_INVALID_PER_MILLE: usize = 10;

/// What reading a file gave.
#[derive(Debug)]
pub(crate) enum Read {
    /// Its text, the sha256 of its bytes, and its stamp as of the read.
    Text { text: String, sha256: [u8; 32], stamp: Stamp },
    /// It is not indexed, for this reason, as of this stamp.
    Skip(SkipReason, Stamp),
    /// It is no longer the file the walk saw (replaced, renamed, swapped for a link): left
    /// for the next walk, which sees what is there now.
    Moved,
}

/// Reads `found` under `root`, at most `max` bytes.
pub(crate) fn read(root: &Path, found: &Found, max: u64) -> Read {
    if found.stamp.size > max {
        return Read::Skip(SkipReason::TooLarge { size: found.stamp.size, max }, found.stamp);
    }
    // O_NOFOLLOW: a file swapped for a link since the walk is not followed. O_NONBLOCK: one
    // swapped for a FIFO does not hang the open (it has no effect on regular files).
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(root.join(&found.rel));
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Read::Moved,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Read::Moved,
        Err(e) => return Read::Skip(SkipReason::Unreadable(e.to_string()), found.stamp),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return Read::Skip(SkipReason::Unreadable(e.to_string()), found.stamp),
    };
    // The same inode the walk saw (so no directory on the way was swapped for a link that
    // leads out of the root), and still a regular file.
    if !meta.is_file() || meta.dev() != found.dev || meta.ino() != found.ino {
        return Read::Moved;
    }
    let stamp = Stamp::of(&meta);
    if stamp.size > max {
        return Read::Skip(SkipReason::TooLarge { size: stamp.size, max }, stamp);
    }
    let mut bytes = Vec::with_capacity(stamp.size as usize);
    // One byte past the bound tells a file that grew since the stat.
    if let Err(e) = (&mut file).take(max + 1).read_to_end(&mut bytes) {
        return Read::Skip(SkipReason::Unreadable(e.to_string()), stamp);
    }
    if bytes.len() as u64 > max {
        return Read::Skip(SkipReason::TooLarge { size: bytes.len() as u64, max }, stamp);
    }
    let sha256: [u8; 32] = Sha256::digest(&bytes).into();
    match decode(bytes) {
        Some(text) => Read::Text { text, sha256, stamp },
        None => Read::Skip(SkipReason::Binary, stamp),
    }
}

/// The text of `bytes`, or `None` if they are not text: any NUL byte, or more than
/// [`MAX_INVALID_PER_MILLE`] of invalid UTF-8. A leading byte-order mark is dropped.
fn decode(bytes: Vec<u8>) -> Option<String> {
    if bytes.contains(&0) {
        return None;
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let bad = lossy.chars().filter(|&c| c == char::REPLACEMENT_CHARACTER).count();
            if bad * 1000 > lossy.chars().count() * MAX_INVALID_PER_MILLE {
                return None;
            }
            lossy
        }
    };
    Some(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_binary_and_mostly_valid_utf8() {
        assert_eq!(decode(b"\xef\xbb\xbfhello".to_vec()).as_deref(), Some("hello"));
        assert_eq!(decode(b"a\0b".to_vec()), None);
        assert_eq!(decode(vec![0xff; 100]), None);
        // One stray Latin-1 byte in a long text is text.
        let mut v = b"caf".to_vec();
        v.push(0xe9);
        v.extend(std::iter::repeat_n(b'x', 500));
        assert!(decode(v).is_some_and(|t| t.starts_with("caf\u{fffd}x")));
    }
}
