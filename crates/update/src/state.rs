//! What a node remembers about updates: the last sequence it applied, against replays.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{fsutil, UpdateError};

/// The state file's name in the data dir.
pub const STATE_FILE: &str = "update-state.json";

/// Persisted update state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateState {
    /// Sequence of the last bundle applied (0: none). Bundles at or below it are replays.
    pub applied_sequence: u64,
    /// Version of the last bundle applied.
    #[serde(default)]
    pub applied_version: Option<String>,
    /// When it was applied, ms since the Unix epoch.
    #[serde(default)]
    pub applied_at_ms: u64,
}

impl UpdateState {
    /// Loads `<data_dir>/update-state.json`; absent means nothing applied yet. A corrupt file
    /// is an error rather than a fresh start, which would re-open the door to replays.
    pub fn load(data_dir: &Path) -> Result<Self, UpdateError> {
        let path = data_dir.join(STATE_FILE);
        match fsutil::read_small(&path, 64 * 1024) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                UpdateError::io(
                    &path,
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("corrupt update state ({e}); fix or delete it to allow updates"),
                    ),
                )
            }),
            Err(UpdateError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(Self::default())
            }
            Err(e) => Err(e),
        }
    }

    /// Writes the state atomically.
    pub fn save(&self, data_dir: &Path) -> Result<(), UpdateError> {
        let bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        fsutil::write_atomic(&data_dir.join(STATE_FILE), &bytes, 0o644)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_absent_and_corrupt() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        assert_eq!(UpdateState::load(dir.path())?, UpdateState::default());
        let s = UpdateState {
            applied_sequence: 7,
            applied_version: Some("0.2.0".into()),
            applied_at_ms: 1,
        };
        s.save(dir.path())?;
        assert_eq!(UpdateState::load(dir.path())?, s);
        std::fs::write(dir.path().join(STATE_FILE), "{")?;
        assert!(UpdateState::load(dir.path()).is_err());
        Ok(())
    }
}
