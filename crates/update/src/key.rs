//! The release key: an ed25519 key generated once on the machine that signs bundles, kept in
//! its data dir as hex (`release.key`, mode 0600). Its public half (`release.pub`) is what
//! workers trust (`trusted-release.pub` in their data dir, or given as a flag).

use std::{fs, io::Read as _, path::Path};

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::{fsutil, UpdateError};

/// The signing key's file name in the data dir.
pub const RELEASE_KEY: &str = "release.key";
/// The public key's file name in the data dir of the signer.
pub const RELEASE_PUB: &str = "release.pub";
/// Where a worker looks for the release public key it trusts, in its data dir.
pub const TRUSTED_RELEASE_PUB: &str = "trusted-release.pub";

/// Loads `<data_dir>/release.key`, creating it (and `release.pub`) on first use.
pub fn load_or_create_release_key(data_dir: &Path) -> Result<SigningKey, UpdateError> {
    let path = data_dir.join(RELEASE_KEY);
    let bad = |reason: String| UpdateError::BadKey { what: path.display().to_string(), reason };
    match fs::read_to_string(&path) {
        Ok(text) => {
            let bytes: [u8; 32] = hex::decode(text.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad("not 64 hex digits; restore it from your backup".into()))?;
            let key = SigningKey::from_bytes(&bytes);
            // The public half is derived, so a lost or stale release.pub is simply rewritten.
            let pub_path = data_dir.join(RELEASE_PUB);
            let want = format!("{}\n", public_key_hex(&key.verifying_key()));
            if fs::read_to_string(&pub_path).ok().as_deref() != Some(want.as_str()) {
                fsutil::write_atomic(&pub_path, want.as_bytes(), 0o644)?;
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut secret))
                .map_err(|e| bad(format!("cannot read /dev/urandom: {e}")))?;
            let key = SigningKey::from_bytes(&secret);
            fsutil::write_atomic(&path, format!("{}\n", hex::encode(secret)).as_bytes(), 0o600)?;
            let public = format!("{}\n", public_key_hex(&key.verifying_key()));
            fsutil::write_atomic(&data_dir.join(RELEASE_PUB), public.as_bytes(), 0o644)?;
            Ok(key)
        }
        Err(e) => Err(UpdateError::io(&path, e)),
    }
}

/// The public key as 64 hex digits.
pub fn public_key_hex(key: &VerifyingKey) -> String {
    hex::encode(key.as_bytes())
}

/// Parses a public key given as 64 hex digits.
pub fn parse_public_key(text: &str, what: &str) -> Result<VerifyingKey, UpdateError> {
    let bad = |reason: &str| UpdateError::BadKey { what: what.into(), reason: reason.into() };
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("not 64 hex digits (print it with `nova bundle key`)"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not a valid ed25519 public key"))
}

/// Reads a trusted public key from a file holding its hex. `Ok(None)` when the file is absent.
pub fn read_trusted_key(path: &Path) -> Result<Option<VerifyingKey>, UpdateError> {
    match fsutil::read_small(path, 4096) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            parse_public_key(&text, &path.display().to_string()).map(Some)
        }
        Err(UpdateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn generated_once_0600_and_public_key_exported() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let a = load_or_create_release_key(dir.path())?;
        let b = load_or_create_release_key(dir.path())?;
        assert_eq!(a.to_bytes(), b.to_bytes(), "the key is generated once");
        let mode = fs::metadata(dir.path().join(RELEASE_KEY))?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let public = read_trusted_key(&dir.path().join(RELEASE_PUB))?.expect("release.pub");
        assert_eq!(public, a.verifying_key());
        // No stray temp files.
        let names: Vec<_> = fs::read_dir(dir.path())?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        assert_eq!(names.len(), 2, "{names:?}");
        Ok(())
    }

    #[test]
    fn bad_keys_are_refused() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        assert!(read_trusted_key(&dir.path().join("absent"))?.is_none());
        fs::write(dir.path().join("k"), "zz")?;
        assert_eq!(read_trusted_key(&dir.path().join("k")).unwrap_err().kind(), "bad_key");
        fs::write(dir.path().join(RELEASE_KEY), "0123")?;
        assert_eq!(load_or_create_release_key(dir.path()).unwrap_err().kind(), "bad_key");
        Ok(())
    }
}
