//! How client commands (`status`, `bench swarm`) reach a running gateway.

use anyhow::Context as _;

use crate::Global;

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct GatewayArgs {
    /// The gateway's HTTP address (`host:port` means http).
    #[arg(long, env = "NOVA_URL", default_value = "http://127.0.0.1:8787", value_parser = super::url_arg::parse)]
    url: String,
    /// Bearer token (default: the one in <data dir>/api-token).
    #[arg(long, env = "NOVA_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl GatewayArgs {
    /// `path` on the gateway, e.g. `/v1/swarm`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url.trim_end_matches('/'))
    }

    /// The gateway's base address, for messages.
    pub(crate) fn base(&self) -> &str {
        &self.url
    }

    /// The token given, else the one `nova serve` keeps in the data dir.
    pub(crate) fn token(&self, global: &Global) -> anyhow::Result<String> {
        token_or_saved(self.token.as_deref(), global)
    }
}

/// `given`, else the token `nova serve` keeps in `<data dir>/api-token`.
pub(crate) fn token_or_saved(given: Option<&str>, global: &Global) -> anyhow::Result<String> {
    if let Some(t) = given {
        return Ok(t.to_owned());
    }
    let path = global.data_dir()?.join("api-token");
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("no --token given and cannot read {}", path.display()))?
        .trim()
        .to_string())
}
