//! `nova bench engine`: prompt-processing and generation throughput of the embedded engine,
//! measured the way llama.cpp's `llama-bench` measures them so the two compare directly; with
//! `--concurrency`, aggregate speed and time to first token of concurrent streams instead.

use std::process::ExitCode;

use nova_engine::{BenchSpec, Engine as _};

use super::engine_args::{self, EngineArgs};
use crate::Global;

mod concurrency;
mod swarm;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Tokens per second of the local engine (pp = prompt processing, tg = generation).
    Engine(EngineBench),
    /// Latency, time to first token and throughput of a running gateway, at rising concurrency.
    Swarm(swarm::Args),
}

#[derive(Debug, clap::Args)]
pub(crate) struct EngineBench {
    #[command(flatten)]
    engine: EngineArgs,
    /// Prompt sizes to measure, comma-separated (0: none).
    #[arg(long, value_delimiter = ',', default_value = "128,512")]
    pp: Vec<u32>,
    /// Generation lengths to measure, comma-separated (0: none).
    #[arg(long, value_delimiter = ',', default_value = "128")]
    tg: Vec<u32>,
    /// Timed runs per test (after one warm-up).
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Instead of pp/tg: C streamed requests at once for each C given, comma-separated, on an
    /// engine generating up to C at a time (unless --parallel says otherwise).
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=64))]
    concurrency: Vec<u32>,
    /// Tokens each concurrent stream generates (with --concurrency).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    stream_tokens: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Most `--concurrency` levels one run measures.
const MAX_LEVELS: usize = 16;

pub(crate) async fn run(global: &Global, cmd: Command) -> anyhow::Result<ExitCode> {
    let args = match cmd {
        Command::Engine(args) => args,
        Command::Swarm(args) => return swarm::run(global, args).await,
    };
    if args.runs == 0 {
        anyhow::bail!("--runs must be at least 1");
    }
    if args.concurrency.len() > MAX_LEVELS {
        // Each level loads the model afresh: a long list is a long wait, not a measurement.
        anyhow::bail!("--concurrency takes at most {MAX_LEVELS} levels");
    }
    if !args.concurrency.is_empty() {
        return run_concurrency(global, &args).await;
    }
    let engine = engine_args::load_llama(global, &args.engine).await?;
    let info = engine.info().clone();
    let spec = BenchSpec { prompt: args.pp.clone(), gen: args.tg.clone(), runs: args.runs };
    let report = engine.bench(spec).await?;
    let rss = peak_rss_kib();
    if args.json {
        let v = serde_json::json!({
            "model": info.model,
            "architecture": info.architecture,
            "threads": report.threads,
            "n_batch": report.n_batch,
            "runs": args.runs,
            "peak_rss_kib": rss,
            "tests": report.tests.iter().map(|t| serde_json::json!({
                "name": t.name, "mean": t.mean(), "sd": t.sd(), "samples": t.samples,
            })).collect::<Vec<_>>(),
        });
        println!("{v}");
    } else {
        println!(
            "model {} ({}), threads {}, batch {}, {} runs each after a warm-up",
            info.model,
            info.architecture.as_deref().unwrap_or("?"),
            report.threads,
            report.n_batch,
            args.runs
        );
        println!("{:<8} {:>20}", "test", "tokens/s (mean ± sd)");
        for t in &report.tests {
            println!("{:<8} {:>11.1} ± {:<7.1}", t.name, t.mean(), t.sd());
        }
        if let Some(kib) = rss {
            println!("peak RSS {:.1} MiB", kib as f64 / 1024.0);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_concurrency(global: &Global, args: &EngineBench) -> anyhow::Result<ExitCode> {
    let levels =
        concurrency::run(global, &args.engine, &args.concurrency, args.stream_tokens, args.runs)
            .await?;
    if !args.json {
        println!(
            "model {}, threads {}, {} tokens a stream, {} timed rounds each after a warm-up",
            args.engine.model,
            args.engine.threads.map_or("all".into(), |t| t.to_string()),
            args.stream_tokens,
            args.runs
        );
        println!(
            "{:>5} {:>9} {:>10} {:>14} {:>14}",
            "conc", "parallel", "agg tok/s", "ttft p50 ms", "ttft p95 ms"
        );
    }
    for l in &levels {
        if args.json {
            let v = serde_json::json!({
                "concurrency": l.concurrency,
                "parallel": l.parallel,
                "tokens_per_s": l.tok_s,
                "ttft_p50_ms": l.ttft_p50_ms,
                "ttft_p95_ms": l.ttft_p95_ms,
            });
            println!("{v}");
        } else {
            println!(
                "{:>5} {:>9} {:>10.1} {:>14.0} {:>14.0}",
                l.concurrency, l.parallel, l.tok_s, l.ttft_p50_ms, l.ttft_p95_ms
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Peak resident set size of this process (Linux `VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
