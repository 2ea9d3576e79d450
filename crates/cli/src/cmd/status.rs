//! `nova status`: the swarm as a running gateway sees it.

use std::{process::ExitCode, time::Duration};

use anyhow::Context as _;
use serde_json::Value;

use super::gateway_args::GatewayArgs;
use crate::Global;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let token = args.gateway.token(global)?;
    let url = args.gateway.url("/v1/swarm");
    let resp = reqwest::Client::new()
        .get(&url)
        .bearer_auth(token)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .with_context(|| {
            format!(
                "cannot reach the gateway at {} (is `nova serve` running?)",
                args.gateway.base()
            )
        })?;
    if !resp.status().is_success() {
        anyhow::bail!(
            "the gateway answered {}: {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    let v: Value = resp.json().await.context("the gateway sent invalid JSON")?;
    if args.json {
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    let now = v["now_ms"].as_u64().unwrap_or(0);
    println!(
        "{:<20} {:<14} {:<8} {:>7} {:>7} {:>10} {:>9} {:>7} {:>8}  ID",
        "NAME", "MODEL", "STATE", "TOK/S", "QUEUE", "SEEN", "BATTERY", "TEMP", "VERSION"
    );
    for w in v["workers"].as_array().into_iter().flatten() {
        let wk = &w["worker"];
        let seen = now.saturating_sub(wk["last_seen_ms"].as_u64().unwrap_or(0));
        let st = &w["status"];
        let battery = match (st["battery_pct"].as_f64(), st["charging"].as_bool()) {
            (Some(p), Some(true)) => format!("{p:.0}%+"),
            (Some(p), _) => format!("{p:.0}%"),
            (None, _) => "-".into(),
        };
        let temp = st["temperature_c"].as_f64().map_or("-".into(), |t| format!("{t:.0}°C"));
        println!(
            "{:<20} {:<14} {:<8} {:>7.0} {:>3}/{:<3} {:>8.1}s {:>9} {:>7} {:>8}  {}",
            wk["name"].as_str().unwrap_or("?"),
            wk["models"][0].as_str().unwrap_or("?"),
            w["state"].as_str().unwrap_or("?"),
            wk["tokens_per_s"].as_f64().unwrap_or(0.0),
            wk["queue_depth"].as_u64().unwrap_or(0),
            wk["queue_capacity"].as_u64().unwrap_or(0),
            seen as f64 / 1000.0,
            battery,
            temp,
            st["version"].as_str().unwrap_or("-"),
            wk["id"].as_str().unwrap_or("?"),
        );
    }
    Ok(ExitCode::SUCCESS)
}
