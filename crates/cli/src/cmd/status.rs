//! `nova status`: the swarm as a running gateway sees it.

use std::{process::ExitCode, time::Duration};

use anyhow::Context as _;
use nova_proto::{SwarmView, SwarmWorker, WorkerState};

use super::gateway_args::GatewayArgs;
use crate::Global;

/// Largest view read: 1,024 workers at well under 2 KiB each.
const MAX_VIEW: usize = 4 << 20;

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
    let body = resp.bytes().await.context("the gateway's answer broke off")?;
    if body.len() > MAX_VIEW {
        anyhow::bail!("the gateway's swarm view is over {MAX_VIEW} bytes");
    }
    if args.json {
        println!("{}", String::from_utf8_lossy(&body));
        return Ok(ExitCode::SUCCESS);
    }
    let view: SwarmView = serde_json::from_slice(&body)
        .context("the gateway's swarm view is not what this nova understands")?;
    println!(
        "{:<20} {:<14} {:<8} {:>7} {:>7} {:>7} {:>7} {:>10} {:>9} {:>7} {:>8}  ID",
        "NAME",
        "MODEL",
        "STATE",
        "TOK/S",
        "QUEUE",
        "SLOTS",
        "KV MiB",
        "SEEN",
        "BATTERY",
        "TEMP",
        "VERSION"
    );
    for w in &view.workers {
        let st = w.status.as_ref();
        let battery = match (st.and_then(|s| s.battery_pct), st.and_then(|s| s.charging)) {
            (Some(p), Some(true)) => format!("{p:.0}%+"),
            (Some(p), _) => format!("{p:.0}%"),
            (None, _) => "-".into(),
        };
        let temp = st.and_then(|s| s.temperature_c).map_or("-".into(), |t| format!("{t:.0}°C"));
        let wk = &w.worker;
        let slots = st.and_then(|s| s.slots.as_ref());
        let (running, total) = slots
            .map_or(("-".into(), "-".into()), |s| (s.running.to_string(), s.total.to_string()));
        let kv = slots.and_then(|s| s.kv_cache_mib).map_or("-".into(), |m| m.to_string());
        println!(
            "{:<20} {:<14} {:<8} {:>7.0} {:>3}/{:<3} {:>3}/{:<3} {:>7} {:>10} {:>9} {:>7} {:>8}  {}",
            wk.name,
            wk.models.first().map_or("?", String::as_str),
            w.state,
            wk.tokens_per_s,
            wk.queue_depth,
            wk.queue_capacity,
            running,
            total,
            kv,
            seen(w, view.now_ms),
            battery,
            temp,
            st.map_or("-", |s| s.version.as_str()),
            wk.id,
        );
    }
    for p in &view.pools {
        println!();
        println!("POOLED MODEL {} ({} layers): {}", p.model, p.layers, p.state);
        for h in &p.holders {
            let role = if h.head { "head" } else { "shard" };
            let last = (h.first_layer + h.layers).saturating_sub(1);
            println!("  {:<20} {:<6} layers {}-{}", h.name, role, h.first_layer, last);
        }
        if let Some(why) = &p.detail {
            println!("  {why}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// When the worker was last heard from, or for one that left, when it left. Never a time
/// counted from the epoch: a gateway that knows neither gets `-`.
fn seen(w: &SwarmWorker, now_ms: u64) -> String {
    let ago = |at: u64| format!("{:.1}s", now_ms.saturating_sub(at) as f64 / 1000.0);
    match (w.state, w.left_at_ms, w.worker.last_seen_ms) {
        (WorkerState::Gone, Some(left), _) if left > 0 => format!("left {}", ago(left)),
        (WorkerState::Gone, _, _) => "gone".into(),
        (_, _, 0) => "-".into(),
        (_, _, at) => ago(at),
    }
}

#[cfg(test)]
mod tests {
    use nova_proto::WorkerSummary;

    use super::*;

    fn worker(state: WorkerState, last_seen_ms: u64, left_at_ms: Option<u64>) -> SwarmWorker {
        SwarmWorker {
            worker: WorkerSummary {
                id: "a".into(),
                name: "n".into(),
                models: vec![],
                tokens_per_s: 0.0,
                queue_depth: 0,
                queue_capacity: 1,
                paused: false,
                last_seen_ms,
            },
            state,
            status: None,
            left_at_ms,
        }
    }

    #[test]
    fn a_departed_worker_shows_when_it_left_never_the_epoch() {
        let now = 1_796_003_295_600;
        assert_eq!(seen(&worker(WorkerState::Ready, now - 1500, None), now), "1.5s");
        assert_eq!(
            seen(&worker(WorkerState::Gone, now - 9000, Some(now - 2000)), now),
            "left 2.0s"
        );
        // What older gateways sent for a departed worker: last_seen_ms 0 and no left_at_ms.
        assert_eq!(seen(&worker(WorkerState::Gone, 0, None), now), "gone");
        assert_eq!(seen(&worker(WorkerState::Stale, 0, None), now), "-");
    }
}
