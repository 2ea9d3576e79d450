//! Bounded reads of small kernel files, with "absent" kept apart from "unreadable".

use std::{
    fs::File,
    io::{ErrorKind, Read as _},
    path::Path,
};

use crate::SensorError;

/// Reads at most `limit` bytes of `path` as text. `Ok(None)` when the file does not exist (the
/// sensor is simply absent); an error when it exists but cannot be read or is not text.
pub(crate) fn read_text(path: &Path, limit: u64) -> Result<Option<String>, SensorError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(path, &e)),
    };
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes).map_err(|e| unreadable(path, &e))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|e| garbage(path, &String::from_utf8_lossy(e.as_bytes())))
}

pub(crate) fn unreadable(path: &Path, e: &std::io::Error) -> SensorError {
    SensorError::Unreadable { path: path.to_path_buf(), reason: e.to_string() }
}

/// A garbage error quoting at most the first 32 characters, so a huge or binary file cannot
/// blow up a log line.
pub(crate) fn garbage(path: &Path, content: &str) -> SensorError {
    SensorError::Garbage { path: path.to_path_buf(), content: content.chars().take(32).collect() }
}
