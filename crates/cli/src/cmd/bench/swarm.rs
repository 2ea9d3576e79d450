//! `nova bench swarm`: drives a gateway's `/v1/chat/completions` (streamed) at concurrency
//! 1..K and reports latency and time-to-first-token percentiles and aggregate tokens/s.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use serde_json::{json, Value};

use crate::{cmd::gateway_args::GatewayArgs, Global};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Concurrency levels, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    concurrency: Vec<usize>,
    /// Requests per concurrency level.
    #[arg(long, default_value_t = 16)]
    requests: usize,
    /// Tokens generated per request (end-of-generation is ignored so every request is equal).
    #[arg(long, default_value_t = 64)]
    max_tokens: u32,
    /// Routing strategy.
    #[arg(long, default_value = "race")]
    strategy: String,
    /// Workers asked per request.
    #[arg(long, default_value_t = 1)]
    fanout: usize,
    /// Model (`nova` = any).
    #[arg(long, default_value = "nova")]
    model: String,
    /// The prompt.
    #[arg(long, default_value = "Write a short story about a lighthouse keeper.")]
    prompt: String,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

struct Sample {
    latency: Duration,
    ttft: Option<Duration>,
    tokens: u64,
}

pub(super) fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i]
}

async fn one(client: &reqwest::Client, args: &Args, token: &str) -> anyhow::Result<Sample> {
    let body = json!({
        "model": args.model,
        "messages": [{"role": "user", "content": args.prompt}],
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_tokens": args.max_tokens,
        "temperature": 0.7,
        "ignore_eos": true,
        "nova": {"strategy": args.strategy, "fanout": args.fanout},
    });
    let started = Instant::now();
    let resp = client
        .post(args.gateway.url("/v1/chat/completions"))
        .bearer_auth(token)
        .json(&body)
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .context("request failed")?;
    if !resp.status().is_success() {
        anyhow::bail!("HTTP {}: {}", resp.status(), resp.text().await.unwrap_or_default());
    }
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    let (mut ttft, mut tokens) = (None, 0u64);
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
        while let Some(at) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=at).collect();
            let line = String::from_utf8_lossy(&line);
            let Some(data) = line.trim().strip_prefix("data: ") else { continue };
            if data == "[DONE]" {
                continue;
            }
            let v: Value = serde_json::from_str(data).context("bad SSE event")?;
            if let Some(e) = v.get("error") {
                anyhow::bail!("stream error: {e}");
            }
            if v["choices"][0]["delta"]["content"].as_str().is_some_and(|c| !c.is_empty()) {
                ttft.get_or_insert_with(|| started.elapsed());
            }
            if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
                tokens = n;
            }
        }
    }
    Ok(Sample { latency: started.elapsed(), ttft, tokens })
}

pub(crate) async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let token = args.gateway.token(global)?;
    let client = reqwest::Client::new();
    if !args.json {
        println!(
            "{} requests per level, {} tokens each, strategy {}, fanout {}",
            args.requests, args.max_tokens, args.strategy, args.fanout
        );
        println!(
            "{:>5} {:>10} {:>10} {:>10} {:>10} {:>12} {:>6}",
            "conc", "p50 ms", "p95 ms", "ttft p50", "ttft p95", "agg tok/s", "errors"
        );
    }
    for &c in &args.concurrency {
        let c = c.max(1);
        let started = Instant::now();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results = futures_util::future::join_all((0..c).map(|_| async {
            let mut out = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < args.requests {
                out.push(one(&client, &args, &token).await);
            }
            out
        }))
        .await;
        let wall = started.elapsed().as_secs_f64();
        let (mut ok, mut errors) = (Vec::new(), Vec::new());
        for r in results.into_iter().flatten() {
            match r {
                Ok(s) => ok.push(s),
                Err(e) => errors.push(e),
            }
        }
        if let Some(e) = errors.first() {
            eprintln!("{} of {} requests failed; first: {e:#}", errors.len(), args.requests);
        }
        let lat: Vec<f64> = ok.iter().map(|s| s.latency.as_secs_f64() * 1000.0).collect();
        let ttft: Vec<f64> =
            ok.iter().filter_map(|s| s.ttft).map(|t| t.as_secs_f64() * 1000.0).collect();
        let tokens: u64 = ok.iter().map(|s| s.tokens).sum();
        let row = json!({
            "concurrency": c,
            "requests": ok.len(),
            "errors": errors.len(),
            "latency_p50_ms": percentile(lat.clone(), 0.5),
            "latency_p95_ms": percentile(lat, 0.95),
            "ttft_p50_ms": percentile(ttft.clone(), 0.5),
            "ttft_p95_ms": percentile(ttft, 0.95),
            "aggregate_tokens_per_s": tokens as f64 / wall,
        });
        if args.json {
            println!("{row}");
        } else {
            println!(
                "{:>5} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>12.1} {:>6}",
                c,
                row["latency_p50_ms"].as_f64().unwrap_or(0.0),
                row["latency_p95_ms"].as_f64().unwrap_or(0.0),
                row["ttft_p50_ms"].as_f64().unwrap_or(0.0),
                row["ttft_p95_ms"].as_f64().unwrap_or(0.0),
                row["aggregate_tokens_per_s"].as_f64().unwrap_or(0.0),
                errors.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
