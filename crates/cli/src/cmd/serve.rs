//! `nova serve`: the gateway. It owns the HTTP API, the registry (SQLite) and the router, and
//! runs this node's own engine as a local worker so that one node alone is a working swarm.
//! This file parses the flags into a [`GatewayNodeConfig`] and prints what the node reports;
//! `nova_node::GatewayNode` does the rest.

use std::{io::Write as _, net::SocketAddr, path::Path, process::ExitCode, time::Duration};

use anyhow::Context as _;
use nova_node::{
    GatewayConfig, GatewayNode, GatewayNodeConfig, HttpConfig, LocalWorkerSpec, P2pSettings,
};
use nova_proto::Limits;

use super::{
    duration_arg,
    engine_args::{self, EngineArgs},
    secret_args::{Secret, SecretArgs},
};
use crate::Global;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address of the HTTP API. Binds to loopback unless told otherwise.
    #[arg(long, env = "NOVA_API_ADDR", default_value = "127.0.0.1:8787")]
    bind: SocketAddr,
    /// Bearer token HTTP clients must present. Default: generated once and kept in
    /// <data dir>/api-token (mode 0600).
    #[arg(long, env = "NOVA_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    pub(crate) file_log: crate::FileLogArgs,
    /// Let web pages from this origin call the API from a browser (CORS), e.g.
    /// http://localhost:3000; repeatable. Off by default. They still need the bearer token.
    #[arg(long, value_name = "ORIGIN", value_parser = cors_origin)]
    cors_origin: Vec<String>,
    /// Do not run a local engine (the gateway only routes).
    #[arg(long)]
    no_local: bool,
    /// This node's name in the swarm view (default: the hostname and the end of its peer id,
    /// so several nodes on one machine are told apart).
    #[arg(long)]
    name: Option<String>,
    /// Directory of signed update bundles (nova-swarm-<version>.tgz and .tgz.sig) served to
    /// workers and at /bundle/latest. Default: <data dir>/bundles.
    #[arg(long, env = "NOVA_BUNDLE_DIR")]
    bundle_dir: Option<std::path::PathBuf>,
    /// p2p address workers join (multiaddr). Default /ip4/127.0.0.1/tcp/8788, or all
    /// interfaces with --lan.
    #[arg(long, env = "NOVA_P2P_LISTEN")]
    p2p_listen: Option<nova_p2p::Multiaddr>,
    /// Let workers on the local network find this gateway by mDNS (multicast on this
    /// machine's LAN interfaces; refused when the p2p address is loopback).
    #[arg(long)]
    lan: bool,
    // The swarm secret workers must present. Default: generated once and kept in
    // <data dir>/swarm-secret (mode 0600); a --secret-file that does not exist yet is created
    // the same way.
    #[command(flatten)]
    secret: SecretArgs,
    /// A worker whose last heartbeat is older than this gets no work (3 missed heartbeats at
    /// the default 10 s).
    #[arg(long, default_value_t = 30_000)]
    stale_after_ms: u64,
    /// A worker that left (or went silent) is dropped from the swarm view this long after it
    /// left, e.g. 30s, 10m.
    #[arg(long, default_value = "10m", value_parser = duration_arg::parse)]
    forget_after: Duration,
    /// Most connected workers; more are refused until some leave.
    #[arg(long, default_value_t = nova_node::MAX_MEMBERS)]
    max_workers: usize,
    /// Share this node's indexed documents (`nova rag add`) with grounded requests. Off by
    /// default: nothing of the index is read unless this is given.
    #[arg(long)]
    share_knowledge: bool,
    /// Longest a grounded request waits for a node's passages (e.g. 2s, 500ms); slower nodes
    /// are skipped.
    #[arg(long, default_value = "2s", value_parser = duration_arg::parse)]
    retrieval_timeout: Duration,
    /// Passages retrieved for a grounded request (the model's window may take fewer).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    rag_k: u32,
    /// Pool this model (catalog name or GGUF path) across this node and the workers that offer
    /// memory: this node keeps the embeddings, output and first layers, workers the rest. It
    /// answers once the swarm offers enough memory; `nova status` shows who holds which layers.
    #[arg(long, value_name = "MODEL")]
    pool: Option<String>,
    /// Most memory, in MiB, this node gives the pooled model (default: half of what is free).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=nova_proto::MAX_POOL_OFFER_MB))]
    max_ram: Option<u64>,
    /// Context window of the pooled model, in tokens.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u32).range(64..=131_072))]
    pool_ctx: u32,
    /// A worker holding layers that does not answer within this is dropped from the pool, which
    /// is then planned again without it (e.g. 30s).
    #[arg(long, default_value = "60s", value_parser = duration_arg::parse)]
    shard_timeout: Duration,
    /// Jobs running at once before new ones get 429.
    #[arg(long, default_value_t = 64)]
    max_in_flight: usize,
    /// A client must send a whole request head within this once it started one.
    #[arg(long, default_value = "10s", value_parser = duration_arg::parse)]
    http_header_timeout: Duration,
    /// A connection with no request in progress is closed after this (a streaming response is
    /// never cut).
    #[arg(long, default_value = "60s", value_parser = duration_arg::parse)]
    http_idle_timeout: Duration,
    /// HTTP connections open at once; more wait until one closes.
    #[arg(long, default_value_t = 1024)]
    http_max_connections: usize,
}

/// Reads the token file, or creates it with a fresh random token. Written to a temporary file
/// with mode 0600 and renamed, so a crash never leaves a half-written or world-readable token.
pub(crate) fn load_or_create_secret(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let dir = path.parent().context("token path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .context("cannot read /dev/urandom for a new token")?;
    let token = hex::encode(bytes);
    let mut tmp = tempfile_in(dir)?;
    tmp.1.write_all(token.as_bytes())?;
    tmp.1.sync_all()?;
    std::fs::rename(&tmp.0, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(token)
}

fn tempfile_in(dir: &Path) -> anyhow::Result<(std::path::PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join(format!(".token-{}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    Ok((path, f))
}

pub(crate) async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let mut signals = Signals::install()?;
    let data_dir = global.data_dir()?;
    nova_node::secure_dir(&data_dir)
        .with_context(|| format!("cannot create {} with mode 0700", data_dir.display()))?;
    let token_path = data_dir.join("api-token");
    let token = match args.token.clone() {
        Some(t) if !t.is_empty() => t,
        _ => load_or_create_secret(&token_path)?,
    };
    let secret = match args.secret.given() {
        Ok(Some(s)) => s,
        Ok(None) => {
            let path = data_dir.join("swarm-secret");
            Secret { value: load_or_create_secret(&path)?, file: Some(path) }
        }
        // A gateway creates the secret file it is pointed at, as it creates its default one.
        Err(_) if args.secret.secret_file.as_ref().is_some_and(|p| !p.exists()) => {
            let path = std::path::absolute(args.secret.secret_file.clone().unwrap_or_default())?;
            Secret { value: load_or_create_secret(&path)?, file: Some(path) }
        }
        Err(e) => return Err(e),
    };
    let key = nova_p2p::load_or_create_key(&data_dir.join("node.key"))?;
    let name = args.name.clone().unwrap_or_else(|| node_name(&key));
    let p2p_listen = match (&args.p2p_listen, args.lan) {
        (Some(l), _) => l.clone(),
        (None, true) => "/ip4/0.0.0.0/tcp/8788".parse()?,
        (None, false) => "/ip4/127.0.0.1/tcp/8788".parse()?,
    };
    // Opened before the model loads, so a missing index fails at once.
    let knowledge = match args.share_knowledge {
        true => Some((name.clone(), super::rag::shared(&data_dir)?)),
        false => None,
    };
    let pool = match &args.pool {
        Some(model) => {
            let entry = engine_args::resolve_name(global, model, args.engine.no_pull).await?;
            Some(nova_node::PoolSpec {
                model: entry.name.clone(),
                path: entry.path.clone(),
                max_ram_mb: args.max_ram.unwrap_or(nova_proto::MAX_POOL_OFFER_MB),
                n_ctx: args.pool_ctx,
                threads: args.engine.threads,
                reply_timeout: args.shard_timeout,
                replan_every: Duration::from_secs(2),
                head_name: name.clone(),
            })
        }
        None => None,
    };
    let local = if args.no_local {
        None
    } else {
        Some(LocalWorkerSpec {
            id: format!("local-{name}"),
            name,
            engine: engine_args::engine_spec(global, &args.engine).await?,
        })
    };
    let config = GatewayNodeConfig {
        http: HttpConfig {
            header_timeout: args.http_header_timeout,
            idle_timeout: args.http_idle_timeout,
            max_connections: args.http_max_connections,
            cors_origins: cors_origins(&args.cors_origin)?,
            ..HttpConfig::new(args.bind)
        },
        token: token.clone(),
        limits: Limits::default(),
        gateway: GatewayConfig {
            max_in_flight: args.max_in_flight,
            stale_after: Duration::from_millis(args.stale_after_ms),
            forget_after: args.forget_after,
            retrieval_timeout: args.retrieval_timeout,
            rag_k: args.rag_k as usize,
            ..GatewayConfig::default()
        },
        store: Some(data_dir.join("nova.db")),
        p2p: P2pSettings { key, secret: secret.value.clone(), listen: p2p_listen, mdns: args.lan },
        bundle_dir: Some(args.bundle_dir.clone().unwrap_or_else(|| data_dir.join("bundles"))),
        local,
        max_members: args.max_workers,
        knowledge,
        pool: pool.clone(),
    };
    let node = GatewayNode::spawn(config).await?;
    if let Some(l) = node.local() {
        eprintln!("local worker: {} at {:.0} tokens/s", l.model, l.tokens_per_s);
    }
    if let Some(p) = &pool {
        say!(
            "pooling {} across the swarm: it answers once workers offer enough memory (see nova status)",
            p.model
        );
    }
    say!("nova gateway listening on http://{}", node.http_addr());
    for a in node.p2p_addrs() {
        say!("p2p listening on {a}");
    }
    print_join_hints(&node, &secret, args.lan);
    if args.token.is_none() {
        say!(
            "bearer token: in {} (curl -H \"Authorization: Bearer $(cat {})\" ...)",
            token_path.display(),
            token_path.display()
        );
    }
    let _ = std::io::stdout().flush();
    tokio::select! {
        () = signals.wait() => {}
        () = node.stopped() => {}
    }
    let failure = node.failure();
    node.shutdown().await;
    if let Some(why) = failure {
        anyhow::bail!("the gateway stopped: {why}");
    }
    eprintln!("nova gateway stopped");
    Ok(ExitCode::SUCCESS)
}

/// The commands that add a device, naming the secret's file, never the secret: a printed
/// secret ends up in scrollback, terminal logs and screenshots.
fn print_join_hints(node: &GatewayNode, secret: &Secret, lan: bool) {
    let addrs = node.p2p_addrs();
    // On all interfaces, loopback is reported too; another device needs a routable address.
    let reachable = addrs
        .iter()
        .find(|a| !a.iter().any(|p| matches!(p, nova_p2p::Protocol::Ip4(ip) if ip.is_loopback())))
        .or(addrs.first());
    let file = secret.file.as_ref().map_or("SECRET_FILE".into(), |f| f.display().to_string());
    if lan {
        say!("add a device on this LAN with: nova worker --lan --secret-file {file}");
    }
    if let Some(a) = reachable {
        say!("add a device with: nova worker --join {a} --secret-file {file}");
    }
    match &secret.file {
        Some(f) => say!(
            "swarm secret: in {} (copy that file to the device, mode 0600; it is never printed)",
            f.display()
        ),
        None => say!(
            "swarm secret: the one given (--secret or NOVA_SWARM_SECRET); on the device put it in \
             SECRET_FILE (mode 0600) or set NOVA_SWARM_SECRET"
        ),
    }
}

/// SIGINT and SIGTERM, listened for from the start: a signal that arrives while the node is
/// still starting is kept for [`Signals::wait`] instead of killing the process outright.
pub(crate) struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    pub(crate) fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    /// Resolves at the first SIGINT or SIGTERM. Cancel-safe.
    pub(crate) async fn wait(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

fn cors_origin(s: &str) -> Result<String, String> {
    nova_node::parse_cors_origin(s).map(|_| s.to_owned())
}

fn cors_origins(given: &[String]) -> anyhow::Result<Vec<nova_node::HeaderValue>> {
    anyhow::ensure!(
        given.len() <= nova_node::MAX_CORS_ORIGINS,
        "{} --cors-origin given; at most {}",
        given.len(),
        nova_node::MAX_CORS_ORIGINS
    );
    given.iter().map(|o| nova_node::parse_cors_origin(o).map_err(anyhow::Error::msg)).collect()
}

/// A node's default name: the hostname and the last 6 characters of its peer id, so three
/// nodes on one machine do not all show as that machine.
pub(crate) fn node_name(key: &nova_p2p::Keypair) -> String {
    let id = key.public().to_peer_id().to_base58();
    let tail = &id[id.len().saturating_sub(6)..];
    format!("{}-{tail}", hostname())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".into())
}
