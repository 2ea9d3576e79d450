//! `nova eval`: asks a running gateway every question of a set under several configurations
//! (greedy, sampled, best_of_n, vote, council, auto) and reports whether they beat one greedy
//! answer: accuracy with a 95 % interval, tokens spent and latency, per configuration and kind.
//! With `--rag` every request asks for an answer grounded in the swarm's shared documents, and
//! the report adds the retrieval's latency and how often the item's gold file was cited.
//!
//! Submodules: `set` loads the questions, `config` builds the request of each configuration,
//! `grade` judges an answer, `retrieval` reads what an answer says about its sources, `stats`
//! and `report` summarise and write the results.

mod config;
mod grade;
mod report;
mod retrieval;
mod set;
mod stats;

use std::{
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use serde_json::{json, Value};

use self::{
    config::Config,
    report::{ConfigReport, ItemResult},
    set::Item,
};
use super::{duration_arg, gateway_args::GatewayArgs};
use crate::Global;

/// Largest `/submit` response read: an answer of a few hundred tokens and its trace are a few
/// KiB; council traces with every member's text stay far below this.
const MAX_RESPONSE: usize = 4 << 20;
/// Longest error message kept per item.
const MAX_ERROR_CHARS: usize = 300;
/// Most requests in flight.
const MAX_CONCURRENCY: usize = 64;
/// Progress is printed every this many items.
const PROGRESS_EVERY: usize = 10;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// The question set (JSONL).
    #[arg(long, default_value = "evals/questions.jsonl")]
    set: PathBuf,
    /// Comma-separated configurations: greedy, sampled, best_of_n:K, vote:K, council:K, auto.
    #[arg(long, default_value = "greedy,sampled,best_of_n:3,vote:3,vote:5,vote:9,council:3,auto")]
    configs: String,
    /// Ask at most N items, taken from each kind in turn.
    #[arg(long)]
    limit: Option<usize>,
    /// Only items of these kinds (comma-separated).
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=MAX_CONCURRENCY as i64))]
    concurrency: u16,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 32)]
    max_tokens: u32,
    /// Where to write the JSON results.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Base of the per-item seeds of `sampled`.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Longest wait for one answer (e.g. `180s`, `5m`).
    #[arg(long, default_value = "180s", value_parser = duration_arg::parse)]
    timeout: Duration,
    /// Ask with retrieval, under every configuration: each request carries `"rag": true`, so
    /// the gateway answers from the top passages of the nodes that share knowledge. Results
    /// are reported as `CONFIG+rag`, with the retrieval's p50/p95 latency and, for items with
    /// a `source` file, the share whose source was cited.
    #[arg(long)]
    rag: bool,
}

pub(crate) async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let configs = Config::parse_list(&args.configs)?;
    let items = set::select(set::load(&args.set)?, &args.kinds, args.limit)?;
    let token = args.gateway.token(global)?;
    let client = reqwest::Client::builder()
        .timeout(args.timeout)
        .build()
        .context("cannot build the HTTP client")?;
    let ctx = Ctx {
        client,
        url: args.gateway.url("/submit"),
        token,
        max_tokens: args.max_tokens,
        rag: args.rag,
    };
    eprintln!(
        "nova eval: {} items × {} configurations against {}{}",
        items.len(),
        configs.len(),
        args.gateway.base(),
        if args.rag { ", with retrieval" } else { "" }
    );

    let mut reports = Vec::with_capacity(configs.len());
    for config in &configs {
        let results = run_config(&ctx, *config, &items, &args).await;
        reports.push(ConfigReport::new(
            label(*config, args.rag),
            config.strategy(),
            config.fanout(),
            args.rag,
            results,
        ));
    }

    println!("{}", report::tables(&reports));
    for r in reports.iter().filter(|r| r.errors > 0) {
        println!(
            "{}: {} errors; first: {}",
            r.config,
            r.errors,
            r.first_error.as_deref().unwrap_or("?")
        );
    }
    if let Some(out) = &args.out {
        let doc = json!({
            "set": args.set,
            "items": items.len(),
            "filters": {"limit": args.limit, "kinds": args.kinds},
            "settings": {
                "url": args.gateway.base(),
                "max_tokens": args.max_tokens,
                "concurrency": args.concurrency,
                "seed": args.seed,
                "timeout_s": args.timeout.as_secs_f64(),
                "rag": args.rag,
            },
            "machine": machine(),
            "configs": reports,
        });
        report::write_json(out, &doc)?;
        eprintln!("results written to {}", out.display());
    }
    let answered: usize = reports.iter().map(|r| r.overall.n).sum();
    Ok(if answered == 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// What every request needs.
struct Ctx {
    client: reqwest::Client,
    url: String,
    token: String,
    max_tokens: u32,
    /// Ask for answers grounded in the shared documents.
    rag: bool,
}

/// A configuration's name in the report: `greedy`, or `greedy+rag` with retrieval, so results
/// with and without it never share a name.
fn label(config: Config, rag: bool) -> String {
    if rag {
        format!("{config}+rag")
    } else {
        config.to_string()
    }
}

/// Every item under one configuration, in set order.
async fn run_config(ctx: &Ctx, config: Config, items: &[Item], args: &Args) -> Vec<ItemResult> {
    let started = Instant::now();
    let name = label(config, args.rag);
    let mut results: Vec<(usize, ItemResult)> = Vec::with_capacity(items.len());
    let mut asks = futures_util::stream::iter(items.iter().enumerate())
        .map(|(i, item)| async move { (i, ask(ctx, config, item, args.seed).await) })
        .buffer_unordered(usize::from(args.concurrency));
    let (mut correct, mut errors) = (0, 0);
    while let Some((i, r)) = asks.next().await {
        match (&r.correct, &r.error) {
            (Some(true), _) => correct += 1,
            (None, Some(e)) => {
                errors += 1;
                // The first error in full; after that the count, so a gateway that lacks a
                // strategy does not flood the terminal with one line per item.
                if errors == 1 {
                    eprintln!("[{name}] {}: {e}", r.id);
                }
            }
            _ => {}
        }
        results.push((i, r));
        let done = results.len();
        if done.is_multiple_of(PROGRESS_EVERY) || done == items.len() {
            eprintln!(
                "[{name}] {done}/{} asked, {correct} correct, {errors} errors, {:.0} s",
                items.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// One item under one configuration. Never fails: a failed request is an item with an error.
async fn ask(ctx: &Ctx, config: Config, item: &Item, seed: u64) -> ItemResult {
    let body = config.body(
        &item.prompt,
        &item.kind,
        ctx.max_tokens,
        config::item_seed(seed, &item.id),
        ctx.rag,
    );
    let started = Instant::now();
    let outcome = submit(ctx, &body).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut r = ItemResult {
        id: item.id.clone(),
        kind: item.kind.clone(),
        correct: None,
        answer: String::new(),
        tokens: 0,
        latency_ms,
        strategy: None,
        error: None,
        retrieval: None,
        source_hit: None,
        source_rank: None,
    };
    match outcome {
        Ok(v) => {
            let text = v.get("text").and_then(Value::as_str).unwrap_or_default();
            let trace = v.get("trace").unwrap_or(&Value::Null);
            r.correct = Some(grade::correct(text, &item.answers));
            r.answer = report::truncate(text, report::MAX_ANSWER_CHARS);
            r.tokens = stats::tokens_spent(trace);
            r.strategy = trace.get("strategy").and_then(Value::as_str).map(str::to_string);
            r.set_retrieval(retrieval::read(&v), item.source.as_deref());
        }
        Err(e) => r.error = Some(report::truncate(&format!("{e:#}"), MAX_ERROR_CHARS)),
    }
    r
}

/// `POST /submit` and its JSON answer, read with a size cap.
async fn submit(ctx: &Ctx, body: &Value) -> anyhow::Result<Value> {
    let mut resp = ctx
        .client
        .post(&ctx.url)
        .bearer_auth(&ctx.token)
        .json(body)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("request failed: {}", error_chain(&e)))?;
    let status = resp.status();
    let mut bytes = Vec::new();
    while let Some(chunk) =
        resp.chunk().await.map_err(|e| anyhow::anyhow!("answer broke off: {}", error_chain(&e)))?
    {
        if bytes.len() + chunk.len() > MAX_RESPONSE {
            anyhow::bail!("the answer is over {MAX_RESPONSE} bytes");
        }
        bytes.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        anyhow::bail!("HTTP {}: {}", status.as_u16(), String::from_utf8_lossy(&bytes).trim());
    }
    serde_json::from_slice(&bytes).context("the answer is not JSON")
}

/// reqwest's error with its causes (`timed out`, `connection refused`), which its Display omits.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}

/// Where the numbers came from.
fn machine() -> Value {
    json!({
        "cores": std::thread::available_parallelism().map(usize::from).unwrap_or(0),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "nova": format!("nova {} ({})", super::bundle::running_version(), nova_update::TARGET),
        "date": report::now_rfc3339(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rag_results_are_labelled_apart() {
        assert_eq!(label(Config::Greedy, false), "greedy");
        assert_eq!(label(Config::Greedy, true), "greedy+rag");
        assert_eq!(label(Config::Vote(3), true), "vote:3+rag");
    }
}
