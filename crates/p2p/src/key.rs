//! The node's persistent identity and the swarm key derived from the secret.

use std::path::Path;

use libp2p::{identity::Keypair, pnet::PreSharedKey};
use sha2::{Digest, Sha256};

use crate::P2pError;

/// The pnet key: sha256 of a domain tag and the secret, so the raw secret never goes on the wire.
pub(crate) fn psk(secret: &str) -> PreSharedKey {
    let mut h = Sha256::new();
    h.update(b"nova-swarm/pnet/1:");
    h.update(secret.as_bytes());
    PreSharedKey::new(h.finalize().into())
}

/// Loads the node's ed25519 identity from `path`, creating it (mode 0600) on first start.
pub fn load_or_create_key(path: &Path) -> Result<Keypair, P2pError> {
    let err = |reason: String| P2pError::Key { path: path.display().to_string(), reason };
    match std::fs::read(path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes)
            .map_err(|e| err(format!("corrupt ({e}); delete it to get a new identity"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
            let key = Keypair::generate_ed25519();
            let bytes = key.to_protobuf_encoding().map_err(|e| err(e.to_string()))?;
            let dir = path.parent().ok_or_else(|| err("no parent directory".into()))?;
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
            let tmp = dir.join(format!(".node-key-{}", std::process::id()));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| err(e.to_string()))?;
            f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(|e| err(e.to_string()))?;
            std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))?;
            Ok(key)
        }
        Err(e) => Err(err(e.to_string())),
    }
}
