//! Engine selection shared by `ask`, `bench`, `serve` and `worker`: which model, which backend,
//! how many threads.

use std::sync::Arc;

use anyhow::Context as _;
use nova_engine::{Engine, LlamaConfig, LlamaEngine, OpenAiHttpConfig, OpenAiHttpEngine};
use nova_model::{catalog, pull, Cache, CacheError, ModelEntry};
use nova_node::EngineSpec;

use crate::{progress::Bar, Global};

/// Which engine backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Backend {
    /// llama.cpp embedded in this binary.
    Llama,
    /// An OpenAI-compatible server at --url.
    OpenaiHttp,
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct EngineArgs {
    /// Catalog model name, name given to `nova model add`, or path to a .gguf file.
    #[arg(long, short, env = "NOVA_MODEL", default_value = catalog::DEFAULT_MODEL)]
    pub(crate) model: String,
    /// Threads for llama.cpp (default: all cores).
    #[arg(long, env = "NOVA_THREADS")]
    pub(crate) threads: Option<u32>,
    /// Context window in tokens, for each request.
    #[arg(long, default_value_t = 2048)]
    pub(crate) ctx: u32,
    /// Requests llama.cpp generates at once, batched in one context with a --ctx window each
    /// (default: up to 4, as many as fit their KV caches in a quarter of the free memory).
    #[arg(long, env = "NOVA_PARALLEL", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(crate) parallel: Option<u32>,
    /// Engine backend.
    #[arg(long, value_enum, default_value = "llama")]
    pub(crate) backend: Backend,
    /// Base URL of the OpenAI-compatible server (with --backend openai-http), with or without
    /// `/v1`; `host:port` means http.
    #[arg(long, env = "NOVA_UPSTREAM_URL", value_parser = super::url_arg::parse)]
    pub(crate) url: Option<String>,
    /// Bearer token for the upstream server.
    #[arg(long, env = "NOVA_UPSTREAM_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    /// Fail instead of pulling a missing catalog model.
    #[arg(long)]
    pub(crate) no_pull: bool,
    /// Benchmarks only: put LAYERS of the model's last layers on a plain-TCP ggml-rpc server at
    /// 127.0.0.1:PORT (`nova rpc-shard --listen`), as llama.cpp's own --rpc split does.
    /// Repeatable; in layer order.
    #[arg(long, hide = true, value_name = "127.0.0.1:PORT=LAYERS", value_parser = parse_rpc)]
    pub(crate) rpc: Vec<(std::net::SocketAddrV4, u32)>,
}

fn parse_rpc(s: &str) -> Result<(std::net::SocketAddrV4, u32), String> {
    let (addr, layers) = s.split_once('=').ok_or("expected 127.0.0.1:PORT=LAYERS")?;
    let addr: std::net::SocketAddrV4 = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    if !addr.ip().is_loopback() {
        return Err("only loopback ggml-rpc servers (nova's own shards go over the swarm)".into());
    }
    let layers: u32 = layers.parse().map_err(|e| format!("{layers}: {e}"))?;
    if !(1..=4096).contains(&layers) {
        return Err("LAYERS must be 1 to 4096".into());
    }
    Ok((addr, layers))
}

/// The plain-TCP shards `--rpc` names.
fn tcp_shards(args: &EngineArgs) -> Vec<nova_rpc::Shard> {
    args.rpc
        .iter()
        .map(|(addr, layers)| nova_rpc::Shard {
            endpoint: addr.to_string(),
            layers: *layers,
            // Never marked lost: a stock connection has no bridge (a dead server aborts).
            link: nova_rpc::Link::new(
                addr.to_string(),
                Default::default(),
                std::time::Duration::from_secs(365 * 86_400),
            ),
        })
        .collect()
}

/// Resolves the model, pulling a missing catalog model unless `no_pull`.
pub(crate) async fn resolve_model(
    global: &Global,
    args: &EngineArgs,
) -> anyhow::Result<ModelEntry> {
    resolve_name(global, &args.model, args.no_pull).await
}

/// Resolves the model called `model` (catalog name or GGUF path), pulling a missing catalog
/// model unless `no_pull`.
pub(crate) async fn resolve_name(
    global: &Global,
    model: &str,
    no_pull: bool,
) -> anyhow::Result<ModelEntry> {
    let cache = Cache::new(&global.data_dir()?);
    match cache.resolve(model) {
        Err(CacheError::NotPulled { name, .. }) if !no_pull => {
            eprintln!("model {name} is not in the cache yet; pulling it (once)");
            let model = catalog::find(&name).context("catalog changed under us")?;
            let dir = cache.dir().to_path_buf();
            tokio::task::spawn_blocking(move || {
                let bar = Bar::new();
                let r = pull::pull(model, &dir, &pull::PullOptions::default(), &bar);
                bar.finish();
                r
            })
            .await??;
            Ok(cache.resolve(&name)?)
        }
        // The hint names the data dir in use, so pasting it pulls where this command looks.
        Err(CacheError::NotPulled { name, path }) if global.data_dir_given() => {
            anyhow::bail!(
                "model {name} is not in the cache ({path}); run `nova model pull {name} --data-dir {}`",
                cache.dir().parent().unwrap_or(cache.dir()).display()
            )
        }
        other => Ok(other?),
    }
}

/// A note for `ask` when `args.model` has no chat template (a base model, such as gemma3-270m):
/// it continues text rather than answering, and `--raw` is the way to use it. `None` when the
/// model has a template or is not at hand (the load says why).
pub(crate) fn base_model_note(global: &Global, args: &EngineArgs) -> Option<String> {
    if args.backend != Backend::Llama {
        return None;
    }
    let entry = Cache::new(&global.data_dir().ok()?).resolve(&args.model).ok()?;
    let info = nova_model::gguf::inspect(&entry.path).ok()?;
    (!info.has_chat_template).then(|| {
        format!(
            "note: {} has no chat template (a base model): it continues text rather than \
             answering; give --raw and the start of the text it should continue, e.g. \
             nova ask -m {} --raw \"The three longest rivers in Europe are\"",
            entry.name, entry.name
        )
    })
}

/// The llama.cpp settings for `args.model`: resolved (pulled if missing) and its GGUF header
/// checked.
async fn llama_config(global: &Global, args: &EngineArgs) -> anyhow::Result<LlamaConfig> {
    let entry = resolve_model(global, args).await?;
    // Check the header first: llama.cpp's own error for a bad file is a bare null pointer.
    let path = entry.path.clone();
    tokio::task::spawn_blocking(move || nova_model::gguf::inspect(&path))
        .await?
        .with_context(|| format!("{} is not a usable model", entry.path.display()))?;
    Ok(LlamaConfig::new(&entry.path, &entry.name)
        .with_threads(args.threads)
        .with_n_ctx(args.ctx)
        .with_parallel(args.parallel)
        .with_shards(tcp_shards(args)))
}

/// Loads the embedded llama.cpp engine for `args.model`.
pub(crate) async fn load_llama(global: &Global, args: &EngineArgs) -> anyhow::Result<LlamaEngine> {
    let config = llama_config(global, args).await?;
    Ok(tokio::task::spawn_blocking(move || LlamaEngine::load(config)).await??)
}

fn http_config(args: &EngineArgs) -> anyhow::Result<OpenAiHttpConfig> {
    let url = args
        .url
        .clone()
        .context("--backend openai-http needs --url (e.g. http://127.0.0.1:8080)")?;
    let mut config = OpenAiHttpConfig::new(url, &args.model);
    config.api_key = args.api_key.clone();
    Ok(config)
}

/// What `serve` and `worker` hand the node: the engine `args` ask for, not loaded yet. With
/// `--backend openai-http` nothing is looked up in the data dir.
pub(crate) async fn engine_spec(global: &Global, args: &EngineArgs) -> anyhow::Result<EngineSpec> {
    match args.backend {
        Backend::Llama => Ok(EngineSpec::Llama(llama_config(global, args).await?)),
        Backend::OpenaiHttp => Ok(EngineSpec::OpenAiHttp(http_config(args)?)),
    }
}

/// Builds the engine `args` ask for.
pub(crate) async fn load(global: &Global, args: &EngineArgs) -> anyhow::Result<Arc<dyn Engine>> {
    match args.backend {
        Backend::Llama => Ok(Arc::new(load_llama(global, args).await?)),
        Backend::OpenaiHttp => Ok(Arc::new(OpenAiHttpEngine::new(http_config(args)?)?)),
    }
}
