//! Where the swarm secret comes from: a file (`--secret-file`), the environment
//! (`NOVA_SWARM_SECRET`) or, discouraged, the command line (`--secret`, which every local user
//! can read in `ps`).

use std::{
    io::Read as _,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

/// Longest secret file read; a secret is a line of hex, so anything longer is the wrong file.
const MAX_SECRET_FILE: u64 = 4096;

/// The swarm secret's source, shared by `serve` and `worker`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SecretArgs {
    /// File holding the swarm secret (what `nova serve` printed a path to). Preferred: unlike
    /// --secret it does not show in `ps`. Wins over --secret when both are given.
    #[arg(long, env = "NOVA_SWARM_SECRET_FILE")]
    pub(crate) secret_file: Option<PathBuf>,
    /// The swarm secret itself. Visible to every local user in `ps`: prefer --secret-file or
    /// the NOVA_SWARM_SECRET environment variable.
    #[arg(long, env = "NOVA_SWARM_SECRET", hide_env_values = true)]
    pub(crate) secret: Option<String>,
}

/// A secret and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Secret {
    pub(crate) value: String,
    /// The file it was read from; `None` when it was given inline.
    pub(crate) file: Option<PathBuf>,
}

impl SecretArgs {
    /// The secret given, if any: the file's trimmed content, or the inline value. An empty
    /// secret is an error.
    pub(crate) fn given(&self) -> anyhow::Result<Option<Secret>> {
        if let Some(path) = &self.secret_file {
            let value = read_secret_file(path)?
                .with_context(|| format!("--secret-file {}: no such file", path.display()))?;
            return Ok(Some(Secret { value, file: Some(absolute(path)) }));
        }
        match &self.secret {
            Some(s) if s.trim().is_empty() => {
                anyhow::bail!("the swarm secret is empty; use the file `nova serve` pointed to")
            }
            Some(s) => Ok(Some(Secret { value: s.trim().to_string(), file: None })),
            None => Ok(None),
        }
    }
}

/// The trimmed content of a secret file, `None` when it does not exist.
pub(crate) fn read_secret_file(path: &Path) -> anyhow::Result<Option<String>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut text = String::new();
    file.take(MAX_SECRET_FILE + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {} as text", path.display()))?;
    if text.len() as u64 > MAX_SECRET_FILE {
        anyhow::bail!("{} is over {MAX_SECRET_FILE} bytes: not a swarm secret", path.display());
    }
    let value = text.trim();
    if value.is_empty() {
        anyhow::bail!("{} is empty; it should hold the swarm secret", path.display());
    }
    Ok(Some(value.to_string()))
}

/// `path` made absolute, so a printed command works from any directory.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
