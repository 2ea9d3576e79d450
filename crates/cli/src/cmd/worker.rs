//! `nova worker`: contribute this device's engine to a swarm.

use std::{process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context as _;
use nova_engine::{BenchSpec, Engine as _};
use nova_node::WorkerInfo;

use super::engine_args::{self, EngineArgs};
use crate::Global;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The gateway's p2p address, exactly as `nova serve` printed it (ends in /p2p/<id>).
    #[arg(long, env = "NOVA_JOIN")]
    join: nova_p2p::Multiaddr,
    /// The swarm secret `nova serve` printed.
    #[arg(long, env = "NOVA_SWARM_SECRET", hide_env_values = true)]
    secret: String,
    /// Name shown in the swarm view (default: the hostname).
    #[arg(long)]
    name: Option<String>,
    /// Address this worker listens on for the gateway's task streams.
    #[arg(long, default_value = "/ip4/127.0.0.1/tcp/0")]
    listen: nova_p2p::Multiaddr,
    /// Heartbeat interval in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    heartbeat_ms: u64,
    #[command(flatten)]
    engine: EngineArgs,
}

pub(crate) async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    if args.secret.is_empty() {
        anyhow::bail!("--secret is empty; use the secret `nova serve` printed");
    }
    let data_dir = global.data_dir()?;
    let engine = engine_args::load_llama(global, &args.engine).await?;
    let report = engine.bench(BenchSpec { prompt: vec![], gen: vec![16], runs: 1 }).await?;
    let tps = report.tests.first().map(|t| t.mean()).unwrap_or(0.0);
    let key = nova_p2p::load_or_create_key(&data_dir.join("node.key"))?;
    let p2p = nova_p2p::P2p::spawn(nova_p2p::P2pConfig {
        key,
        secret: args.secret.clone(),
        listen: vec![args.listen.clone()],
        idle_timeout: Duration::from_secs(3600),
    })?;
    let name = args.name.clone().unwrap_or_else(super::serve::hostname);
    println!(
        "worker {} ({}, {tps:.0} tokens/s) joining {}",
        p2p.peer_id(),
        engine.info().model,
        args.join
    );
    let info = WorkerInfo {
        name,
        tokens_per_s: tps,
        version: env!("CARGO_PKG_VERSION").into(),
        heartbeat: Duration::from_millis(args.heartbeat_ms.max(100)),
    };
    let engine: Arc<dyn nova_engine::Engine> = Arc::new(engine);
    tokio::select! {
        r = nova_node::run_worker(&p2p, args.join.clone(), engine, info) => {
            r.map_err(anyhow::Error::msg).context("the worker stopped")?;
        }
        _ = tokio::signal::ctrl_c() => eprintln!("worker stopped"),
    }
    Ok(ExitCode::SUCCESS)
}
