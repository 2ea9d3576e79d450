//! `nova`: the single binary every device runs.
//!
//! This file only parses arguments, sets up logging and maps errors to exit codes; each
//! subcommand lives in `cmd/`.

mod cmd;
mod logging;
mod progress;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

/// Many small devices, one AI.
#[derive(Debug, Parser)]
#[command(name = "nova", version, about)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Global {
    /// Data directory (models, keys, logs). Default: $NOVA_HOME, else ~/.local/share/nova.
    #[arg(long, global = true, env = "NOVA_HOME")]
    data_dir: Option<PathBuf>,
    /// Log filter, e.g. `info` or `debug,llama-cpp-2=info`. llama.cpp's own messages are under
    /// the `llama-cpp-2` target; its load-time warnings are noise for users, hence `error`.
    #[arg(long, global = true, env = "NOVA_LOG", default_value = "warn,llama-cpp-2=error")]
    log: String,
}

/// The log files' filter: only `serve` and `worker` write log files, so only they take it.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct FileLogArgs {
    /// Log filter for this node's files under `<data dir>/logs/`.
    #[arg(long, env = "NOVA_LOG_FILE", default_value = logging::DEFAULT_FILE_FILTER)]
    pub(crate) file_log: String,
}

impl Global {
    /// Whether the data dir was chosen (--data-dir or NOVA_HOME) rather than the default.
    pub(crate) fn data_dir_given(&self) -> bool {
        self.data_dir.is_some()
    }

    /// The data directory, resolved.
    pub(crate) fn data_dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(d) = &self.data_dir {
            return Ok(d.clone());
        }
        let home = std::env::var_os("HOME")
            .ok_or_else(|| anyhow::anyhow!("neither --data-dir, NOVA_HOME nor HOME is set"))?;
        Ok(PathBuf::from(home).join(".local/share/nova"))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ask the local model and stream its answer.
    Ask(cmd::ask::Args),
    /// Chat in the terminal with the local model, or with the swarm through --gateway.
    Chat(cmd::chat::Args),
    /// Manage model files.
    #[command(subcommand)]
    Model(cmd::model::Command),
    /// Run the gateway: the HTTP API and dashboard over this node's engine and the swarm's
    /// workers (they join with `nova worker --join`).
    Serve(cmd::serve::Args),
    /// Show the swarm's live view from a running gateway.
    Status(cmd::status::Args),
    /// Contribute this device's engine to a gateway's swarm.
    Worker(cmd::worker::Args),
    /// Measure performance.
    #[command(subcommand)]
    Bench(cmd::bench::Command),
    /// Measure answer quality per routing strategy on a question set, against a running gateway.
    Eval(cmd::eval::Args),
    /// Build, sign and verify signed update bundles.
    #[command(subcommand)]
    Bundle(cmd::bundle::Command),
    /// Print this binary's version (`--json` for the update health check).
    Version(cmd::bundle::VersionArgs),
    /// Exit 0 if this binary starts correctly (the update health check).
    SelfCheck(cmd::bundle::SelfCheckArgs),
    /// Index this device's documents (text, Markdown, HTML) so the swarm can answer from them.
    #[command(subcommand)]
    Rag(cmd::rag::Command),
    /// Show this device's battery, temperature and memory, and whether the guard would pause it.
    Guard(cmd::guard::Args),
    /// Serve one ggml-rpc session on standard input (started by a worker; not for people).
    #[command(hide = true)]
    RpcShard(cmd::rpc_shard::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Only long-running commands keep log files; one-shot ones would litter the data dir.
    let file_log = match &cli.command {
        Command::Serve(a) => Some(a.file_log.file_log.as_str()),
        Command::Worker(a) => Some(a.file_log.file_log.as_str()),
        _ => None,
    };
    // Held until main returns: dropping it flushes the log files.
    let _logging = logging::init(logging::Settings {
        stderr_filter: &cli.global.log,
        file_filter: file_log.unwrap_or(logging::DEFAULT_FILE_FILTER),
        dir: file_log.and_then(|_| cli.global.data_dir().ok()).map(|d| d.join("logs")),
    });

    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Ask(args) => cmd::ask::run(&cli.global, args).await,
            Command::Chat(args) => cmd::chat::run(&cli.global, args).await,
            Command::Model(c) => cmd::model::run(&cli.global, c).await,
            Command::Bench(c) => cmd::bench::run(&cli.global, c).await,
            Command::Serve(args) => cmd::serve::run(&cli.global, args).await,
            Command::Worker(args) => cmd::worker::run(&cli.global, args).await,
            Command::Status(args) => cmd::status::run(&cli.global, args).await,
            Command::Eval(args) => cmd::eval::run(&cli.global, args).await,
            Command::Bundle(c) => cmd::bundle::run(&cli.global, c).await,
            Command::Version(args) => cmd::bundle::version(args),
            Command::SelfCheck(args) => cmd::bundle::self_check(args),
            Command::Guard(args) => cmd::guard::run(args).await,
            Command::Rag(c) => cmd::rag::run(&cli.global, c).await,
            Command::RpcShard(args) => cmd::rpc_shard::run(args),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
