//! `nova worker`: contribute this device's engine to a swarm. This file parses the flags into
//! a [`WorkerNodeConfig`] and prints what the node reports; `nova_node::WorkerNode` does the
//! rest.

use std::{process::ExitCode, time::Duration};

use anyhow::Context as _;
use nova_node::{GuardSettings, P2pSettings, WorkerNode, WorkerNodeConfig};

use super::{
    engine_args::{self, EngineArgs},
    guard_args::GuardArgs,
    secret_args::SecretArgs,
};
use crate::Global;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("gateway").args(["join", "lan"]).required(true).multiple(true)))]
#[command(group(clap::ArgGroup::new("swarm_secret").args(["secret", "secret_file"]).required(true).multiple(true)))]
pub(crate) struct Args {
    /// The gateway's p2p address: the multiaddr `nova serve` printed (ends in /p2p/<id>), or
    /// host:port (then whoever answers there with the swarm secret is taken as the gateway).
    #[arg(long, env = "NOVA_JOIN")]
    join: Option<String>,
    /// Find the gateway on the local network by mDNS (multicast on this device's LAN
    /// interfaces). Listens on all interfaces unless --listen says otherwise.
    #[arg(long)]
    lan: bool,
    // The swarm secret: --secret-file (preferred), NOVA_SWARM_SECRET or --secret.
    #[command(flatten)]
    secret: SecretArgs,
    /// Name shown in the swarm view (default: the hostname and the end of this node's peer
    /// id, so several workers on one machine are told apart).
    #[arg(long)]
    name: Option<String>,
    /// Address this worker listens on (default: loopback; all interfaces with --lan). The
    /// gateway reaches the worker over the connection the worker opened, so this matters only
    /// for discovery.
    #[arg(long)]
    listen: Option<nova_p2p::Multiaddr>,
    #[command(flatten)]
    pub(crate) file_log: crate::FileLogArgs,
    /// Heartbeat interval in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    heartbeat_ms: u64,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    update: super::bundle::UpdateArgs,
    #[command(flatten)]
    guard: GuardArgs,
    /// Share this device's indexed documents (`nova rag add`) with the swarm's grounded
    /// requests. Off by default: then the node refuses every retrieval query.
    #[arg(long)]
    share_knowledge: bool,
    /// Most memory, in MiB, this device gives to layers of a model pooled across the swarm
    /// (`nova serve --pool`). Default: half of what is free; 0 holds none.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(0..=nova_proto::MAX_POOL_OFFER_MB))]
    max_ram: Option<u64>,
}

pub(crate) async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let mut signals = super::serve::Signals::install()?;
    let secret = args.secret.given()?.context(
        "no swarm secret: give --secret-file (the file `nova serve` named) or set NOVA_SWARM_SECRET",
    )?;
    let target = match &args.join {
        Some(j) => nova_node::JoinTarget::Addr(join_addr(j).await?),
        None => nova_node::JoinTarget::Lan,
    };
    let listen = match (&args.listen, args.lan) {
        (Some(l), _) => l.clone(),
        (None, true) => "/ip4/0.0.0.0/tcp/0".parse()?,
        (None, false) => "/ip4/127.0.0.1/tcp/0".parse()?,
    };
    let (sources, guard, interval) = args.guard.build()?;
    let data_dir = global.data_dir()?;
    nova_node::secure_dir(&data_dir)
        .with_context(|| format!("cannot create {} with mode 0700", data_dir.display()))?;
    let key = nova_p2p::load_or_create_key(&data_dir.join("node.key"))?;
    let (updates, update_line) = super::bundle::update_settings(global, &args.update)?;
    let joining = match &target {
        nova_node::JoinTarget::Addr(a) => a.to_string(),
        nova_node::JoinTarget::Lan => "a gateway on the LAN".into(),
    };
    let p2p_key_for_name = key.clone();
    let p2p = P2pSettings { key, secret: secret.value, listen, mdns: args.lan };
    // A bad p2p setting fails before a model is looked up (and maybe pulled).
    p2p.check()?;
    let knowledge = match args.share_knowledge {
        true => Some(super::rag::shared(&global.data_dir()?)?),
        false => None,
    };
    let config = WorkerNodeConfig {
        p2p,
        target,
        name: args.name.clone().unwrap_or_else(|| super::serve::node_name(&p2p_key_for_name)),
        version: super::bundle::running_version().into(),
        heartbeat: Duration::from_millis(args.heartbeat_ms),
        engine: engine_args::engine_spec(global, &args.engine).await?,
        guard: Some(GuardSettings { sources, guard, interval }),
        updates,
        knowledge,
        shards: shard_host(args.max_ram)?,
    };
    let mut node = WorkerNode::spawn(config).await?;
    say!(
        "worker {} ({}, {:.0} tokens/s) joining {joining}",
        node.peer_id(),
        node.model(),
        node.tokens_per_s()
    );
    say!("{update_line}");
    let mut events = node.join_events();
    loop {
        tokio::select! {
            () = signals.wait() => break,
            () = node.stopped() => break,
            Some(event) = async { events.as_mut()?.recv().await } => tell(&event),
        }
    }
    let failure = node.failure();
    node.shutdown().await;
    if let Some(why) = failure {
        anyhow::bail!("the worker stopped: {why}");
    }
    eprintln!("worker stopped");
    Ok(ExitCode::SUCCESS)
}

/// One line on the terminal for a join event: joins on stdout, trouble on stderr.
fn tell(event: &nova_node::JoinEvent) {
    match event {
        nova_node::JoinEvent::Joined { gateway, away: None } => {
            say!("joined the gateway {gateway}")
        }
        nova_node::JoinEvent::Joined { gateway, away: Some(d) } => {
            say!("rejoined the gateway {gateway} ({:.0} s without it)", d.as_secs_f64())
        }
        nova_node::JoinEvent::Lost { why } => eprintln!("lost the gateway ({why}); rejoining"),
        nova_node::JoinEvent::Failed(f) => eprintln!("cannot join yet: {f}; retrying"),
    }
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

/// How this worker holds pooled layers: sessions run as `nova rpc-shard` processes of this very
/// binary.
fn shard_host(max_ram: Option<u64>) -> anyhow::Result<Option<nova_node::ShardHostConfig>> {
    if max_ram == Some(0) {
        return Ok(None);
    }
    let program = std::env::current_exe().context("cannot find this nova binary")?;
    let threads = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
    Ok(Some(nova_node::ShardHostConfig {
        program,
        args: vec!["rpc-shard".into()],
        threads,
        max_ram_mb: max_ram.unwrap_or(nova_proto::MAX_POOL_OFFER_MB),
        limits: nova_rpc::wire::FrameLimits::default(),
    }))
}
