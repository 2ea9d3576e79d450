//! `nova rpc-shard` (hidden): the process a worker starts for each ggml-rpc session of a pooled
//! model. Its standard input is one end of a socketpair; the worker carries the other end to
//! the head over the swarm, checking every frame on the way. Running the server in a process
//! of its own keeps its trust in the head, and any abort, away from the worker.

use std::os::fd::AsFd as _;
use std::os::unix::fs::FileTypeExt as _;
use std::process::ExitCode;

use anyhow::Context as _;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Threads for the layers this shard computes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    threads: u32,
    /// Benchmarks only: serve on this loopback `127.0.0.1:PORT` over plain TCP, exactly as
    /// llama.cpp's own rpc-server (no tunnel, no checks), forever.
    #[arg(long, value_name = "127.0.0.1:PORT")]
    listen: Option<std::net::SocketAddrV4>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(addr) = args.listen {
        // The stock server serves whoever connects: never beyond this machine.
        anyhow::ensure!(addr.ip().is_loopback(), "--listen takes a loopback address only");
        nova_rpc::serve_tcp(&addr.to_string(), args.threads as usize)
            .with_context(|| format!("cannot serve on {addr}"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let stdin = std::io::stdin().as_fd().try_clone_to_owned().context("standard input")?;
    let file = std::fs::File::from(stdin);
    let kind = file.metadata().context("standard input")?.file_type();
    anyhow::ensure!(
        kind.is_socket(),
        "standard input must be a connected socket (a worker starts this command itself)"
    );
    nova_rpc::serve(file.into(), args.threads as usize).context("the shard session failed")?;
    Ok(ExitCode::SUCCESS)
}
