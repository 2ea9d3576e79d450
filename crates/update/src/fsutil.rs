//! File helpers: every write goes to a temporary file in the target's directory and is renamed
//! into place, so a crash leaves the old file or the new one, never a mix.

use std::{
    fs,
    io::{Read, Write as _},
    os::unix::fs::PermissionsExt as _,
    path::Path,
};

use sha2::{Digest as _, Sha256};

use crate::UpdateError;

/// Writes `bytes` to `path` with `mode`, atomically.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), UpdateError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(|e| UpdateError::io(dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".nova-write-")
        .tempfile_in(dir)
        .map_err(|e| UpdateError::io(dir, e))?;
    // The temp file is created 0600, so a secret is never readable, even for a moment.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .and_then(|()| tmp.write_all(bytes))
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| UpdateError::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| UpdateError::io(path, e.error))?;
    sync_dir(dir);
    Ok(())
}

/// Makes a rename durable. Best effort: some filesystems refuse to fsync a directory.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// sha256 (hex) and length of everything `r` yields, up to `limit` bytes.
pub(crate) fn digest_reader(
    mut r: impl Read,
    limit: u64,
    what: &str,
) -> Result<(String, u64), std::io::Error> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let got = r.read(&mut buf)?;
        if got == 0 {
            break;
        }
        n += got as u64;
        if n > limit {
            return Err(std::io::Error::other(format!("{what} exceeds {limit} bytes")));
        }
        h.update(&buf[..got]);
    }
    Ok((hex::encode(h.finalize()), n))
}

/// Reads a small text file, refusing anything over `limit` bytes.
pub(crate) fn read_small(path: &Path, limit: u64) -> Result<Vec<u8>, UpdateError> {
    let f = fs::File::open(path).map_err(|e| UpdateError::io(path, e))?;
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf).map_err(|e| UpdateError::io(path, e))?;
    if buf.len() as u64 > limit {
        return Err(UpdateError::TooLarge { what: path.display().to_string(), limit });
    }
    Ok(buf)
}
