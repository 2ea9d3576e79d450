//! `nova worker`: contribute this device's engine to a swarm.

use std::{process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context as _;
use nova_engine::{BenchSpec, Engine as _};
use nova_node::WorkerInfo;

use super::{
    engine_args::{self, EngineArgs},
    guard_args::GuardArgs,
};
use crate::Global;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("gateway").args(["join", "lan"]).required(true).multiple(true)))]
pub(crate) struct Args {
    /// The gateway's p2p address: the multiaddr `nova serve` printed (ends in /p2p/<id>), or
    /// host:port (then whoever answers there with the swarm secret is taken as the gateway).
    #[arg(long, env = "NOVA_JOIN")]
    join: Option<String>,
    /// Find the gateway on the local network by mDNS (multicast on this device's LAN
    /// interfaces). Listens on all interfaces unless --listen says otherwise.
    #[arg(long)]
    lan: bool,
    /// The swarm secret `nova serve` printed.
    #[arg(long, env = "NOVA_SWARM_SECRET", hide_env_values = true)]
    secret: String,
    /// Name shown in the swarm view (default: the hostname).
    #[arg(long)]
    name: Option<String>,
    /// Address this worker listens on (default: loopback; all interfaces with --lan). The
    /// gateway reaches the worker over the connection the worker opened, so this matters only
    /// for discovery.
    #[arg(long)]
    listen: Option<nova_p2p::Multiaddr>,
    /// Heartbeat interval in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    heartbeat_ms: u64,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    update: super::bundle::UpdateArgs,
    #[command(flatten)]
    guard: GuardArgs,
}

pub(crate) async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    if args.secret.is_empty() {
        anyhow::bail!("--secret is empty; use the secret `nova serve` printed");
    }
    let target = match &args.join {
        Some(j) => nova_node::JoinTarget::Addr(join_addr(j).await?),
        None => nova_node::JoinTarget::Lan,
    };
    let listen = match (&args.listen, args.lan) {
        (Some(l), _) => l.clone(),
        (None, true) => "/ip4/0.0.0.0/tcp/0".parse()?,
        (None, false) => "/ip4/127.0.0.1/tcp/0".parse()?,
    };
    let (sources, guard, guard_interval) = args.guard.build()?;
    let data_dir = global.data_dir()?;
    nova_store::secure_dir(&data_dir)
        .with_context(|| format!("cannot create {} with mode 0700", data_dir.display()))?;
    // The p2p side starts first so that a bad address or flag fails before the model loads.
    let key = nova_p2p::load_or_create_key(&data_dir.join("node.key"))?;
    let p2p = nova_p2p::P2p::spawn(nova_p2p::P2pConfig {
        key,
        secret: args.secret.clone(),
        listen: vec![listen],
        idle_timeout: Duration::from_secs(3600),
        mdns: args.lan,
    })?;
    let engine = engine_args::load_llama(global, &args.engine).await?;
    let report = engine.bench(BenchSpec { prompt: vec![], gen: vec![16], runs: 1 }).await?;
    let tps = report.tests.first().map(|t| t.mean()).unwrap_or(0.0);
    let name = args.name.clone().unwrap_or_else(super::serve::hostname);
    let joining = match &target {
        nova_node::JoinTarget::Addr(a) => a.to_string(),
        nova_node::JoinTarget::Lan => "a gateway on the LAN".into(),
    };
    println!(
        "worker {} ({}, {tps:.0} tokens/s) joining {joining}",
        p2p.peer_id(),
        engine.info().model
    );
    let updates = super::bundle::start_updater(global, &args.update, &p2p)?;
    let info = WorkerInfo {
        name,
        tokens_per_s: tps,
        version: super::bundle::running_version().into(),
        heartbeat: Duration::from_millis(args.heartbeat_ms.max(100)),
        health: Some(nova_node::spawn_guard(sources, guard, guard_interval).await),
        updates,
    };
    let engine: Arc<dyn nova_engine::Engine> = Arc::new(engine);
    tokio::select! {
        r = nova_node::run_worker(&p2p, target, engine, info) => {
            r.map_err(anyhow::Error::msg).context("the worker stopped")?;
        }
        _ = tokio::signal::ctrl_c() => eprintln!("worker stopped"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `--join` as a multiaddr: taken as is when it is one, else `host:port` resolved now.
async fn join_addr(join: &str) -> anyhow::Result<nova_p2p::Multiaddr> {
    if join.starts_with('/') {
        return join.parse().with_context(|| format!("--join {join:?} is not a valid multiaddr"));
    }
    let mut addrs = tokio::net::lookup_host(join).await.with_context(|| {
        format!("--join {join:?}: expected host:port (e.g. 192.168.1.20:8788) or the multiaddr `nova serve` printed")
    })?;
    let sa = addrs.next().with_context(|| format!("--join {join:?}: the host has no address"))?;
    let ip = match sa.ip() {
        std::net::IpAddr::V4(ip) => nova_p2p::Protocol::Ip4(ip),
        std::net::IpAddr::V6(ip) => nova_p2p::Protocol::Ip6(ip),
    };
    Ok(nova_p2p::Multiaddr::empty().with(ip).with(nova_p2p::Protocol::Tcp(sa.port())))
}
