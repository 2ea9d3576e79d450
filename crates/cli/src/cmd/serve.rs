//! `nova serve`: the gateway. It owns the HTTP API, the registry (SQLite) and the router, and
//! runs this node's own engine as a local worker so that one node alone is a working swarm.

use std::{
    io::Write as _, net::SocketAddr, path::Path, process::ExitCode, sync::Arc, time::Duration,
};

use anyhow::Context as _;
use nova_api::AppState;
use nova_engine::{BenchSpec, Engine as _};
use nova_node::{Gateway, GatewayConfig, LocalWorker};
use nova_proto::Limits;
use nova_store::Store;

use super::engine_args::{self, EngineArgs};
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
    /// Do not run a local engine (the gateway only routes).
    #[arg(long)]
    no_local: bool,
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
    /// Swarm secret workers must present. Default: generated once and kept in
    /// <data dir>/swarm-secret (mode 0600).
    #[arg(long, env = "NOVA_SWARM_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// A worker whose last heartbeat is older than this gets no work (3 missed heartbeats at
    /// the default 10 s).
    #[arg(long, default_value_t = 30_000)]
    stale_after_ms: u64,
    /// Jobs running at once before new ones get 429.
    #[arg(long, default_value_t = 64)]
    max_in_flight: usize,
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
    let data_dir = global.data_dir()?;
    nova_store::secure_dir(&data_dir)
        .with_context(|| format!("cannot create {} with mode 0700", data_dir.display()))?;
    let token_path = data_dir.join("api-token");
    let token = match args.token.clone() {
        Some(t) if !t.is_empty() => t,
        _ => load_or_create_secret(&token_path)?,
    };
    let db = data_dir.join("nova.db");
    let store =
        tokio::task::spawn_blocking(move || Store::open(&db)).await?.with_context(|| {
            format!("cannot open the registry {}", data_dir.join("nova.db").display())
        })?;

    let config = GatewayConfig {
        max_in_flight: args.max_in_flight,
        stale_after: Duration::from_millis(args.stale_after_ms),
        ..GatewayConfig::default()
    };
    let gateway = Gateway::new(config, Some(store)).await;
    if !args.no_local {
        let engine = engine_args::load_llama(global, &args.engine).await?;
        // A quick self-measurement so routing knows this node's speed.
        let report = engine.bench(BenchSpec { prompt: vec![], gen: vec![16], runs: 1 }).await?;
        let tps = report.tests.first().map(|t| t.mean()).unwrap_or(0.0);
        let model = engine.info().model.clone();
        let name = hostname();
        tracing::info!(%model, tokens_per_s = tps, "local worker ready");
        eprintln!("local worker: {model} at {tps:.0} tokens/s");
        gateway.add_worker(Arc::new(LocalWorker::new(
            format!("local-{name}"),
            name,
            Arc::new(engine),
            tps,
        )));
    }

    let secret = match args.secret.clone() {
        Some(s) if !s.is_empty() => s,
        _ => load_or_create_secret(&global.data_dir()?.join("swarm-secret"))?,
    };
    let key = nova_p2p::load_or_create_key(&global.data_dir()?.join("node.key"))?;
    let p2p_listen = match (&args.p2p_listen, args.lan) {
        (Some(l), _) => l.clone(),
        (None, true) => "/ip4/0.0.0.0/tcp/8788".parse()?,
        (None, false) => "/ip4/127.0.0.1/tcp/8788".parse()?,
    };
    let p2p = nova_p2p::P2p::spawn(nova_p2p::P2pConfig {
        key,
        secret: secret.clone(),
        listen: vec![p2p_listen.clone()],
        idle_timeout: Duration::from_secs(3600),
        mdns: args.lan,
    })?;
    let p2p_addrs = tokio::time::timeout(Duration::from_secs(10), p2p.listen_addrs())
        .await
        .with_context(|| format!("could not listen on {p2p_listen} within 10 s"))??;
    gateway.set_refused_counter(p2p.refused_counter());
    let shelf = Arc::new(nova_update::Shelf::new(match args.bundle_dir.clone() {
        Some(d) => d,
        None => global.data_dir()?.join("bundles"),
    }));
    tokio::spawn(nova_node::accept_members_with(
        gateway.clone(),
        p2p.control(),
        Some(shelf.clone()),
    ));
    tokio::spawn(nova_node::serve_bundles(shelf.clone(), p2p.control()));

    let listener = tokio::net::TcpListener::bind(args.bind).await.with_context(|| {
        format!("cannot listen on {} (is another nova running? try --bind 127.0.0.1:0)", args.bind)
    })?;
    let addr = listener.local_addr()?;
    let app = nova_api::router(
        AppState::new(Arc::new(gateway), &token, Limits::default())
            .with_bundles(Arc::new(nova_node::ShelfBundles(shelf))),
    );
    println!("nova gateway listening on http://{addr}");
    for a in &p2p_addrs {
        println!("p2p listening on {a}");
    }
    // On all interfaces, loopback is reported too; another device needs a routable address.
    let reachable = p2p_addrs
        .iter()
        .find(|a| !a.iter().any(|p| matches!(p, nova_p2p::Protocol::Ip4(ip) if ip.is_loopback())))
        .or(p2p_addrs.first());
    // The secret is printed for the person at the terminal, never logged.
    if args.lan {
        println!("add a device on this LAN with: nova worker --lan --secret {secret}");
    }
    if let Some(a) = reachable {
        println!("add a device with: nova worker --join {a} --secret {secret}");
    }
    if args.token.is_none() {
        println!(
            "bearer token: in {} (curl -H \"Authorization: Bearer $(cat {})\" ...)",
            token_path.display(),
            token_path.display()
        );
    }
    std::io::stdout().flush()?;
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        let _ = stopping_tx.send(());
    });
    // Graceful shutdown waits for open connections; a long SSE stream must not hold the
    // process hostage, so stop waiting 5 s after the signal.
    tokio::select! {
        r = server => r.context("the HTTP server failed")?,
        _ = async {
            let _ = stopping_rx.await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        } => eprintln!("open connections did not finish within 5 s; closing them"),
    }
    eprintln!("nova gateway stopped");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".into())
}
