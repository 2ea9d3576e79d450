//! `nova guard`: what the device guard sees here, and whether it would pause this node.

use std::process::ExitCode;

use anyhow::Context as _;
use nova_guard::Reading;

use super::guard_args::GuardArgs;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    guard: GuardArgs,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (sources, mut guard, _) = args.guard.build()?;
    // Blocking: may wait for termux-battery-status.
    let reading = tokio::task::spawn_blocking(move || sources.read())
        .await
        .context("the sensor reader panicked")?;
    let config = guard.config().clone();
    let seen = guard.observe(&reading);

    if args.json {
        let reasons: Vec<String> = seen.reasons.iter().map(ToString::to_string).collect();
        let v = json!({
            "reading": reading,
            "would_pause": seen.paused,
            "reasons": reasons,
            "thresholds": config,
        });
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    print_table(&reading);
    if seen.paused {
        let reasons: Vec<String> = seen.reasons.iter().map(ToString::to_string).collect();
        println!("{:<12} would pause: {}", "guard", reasons.join("; "));
    } else {
        println!(
            "{:<12} would run (pauses below {} % when not charging, or above {} °C)",
            "guard", config.pause_below_battery_pct, config.pause_above_temp_c
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(r: &Reading) {
    let unknown = || "unknown".to_string();
    let source = r.battery_source.map(|s| format!(" ({})", json!(s).as_str().unwrap_or("?")));
    let battery = r
        .battery_pct
        .map_or_else(unknown, |p| format!("{p:.0} %{}", source.clone().unwrap_or_default()));
    let charging = r.charging.map_or_else(unknown, |c| if c { "yes" } else { "no" }.to_string());
    let temp = r.temp_c.map_or_else(unknown, |t| format!("{t:.1} °C"));
    let memory = match (r.free_ram_mb, r.total_ram_mb) {
        (Some(free), Some(total)) => format!("{free} MiB free of {total} MiB"),
        _ => unknown(),
    };
    for (k, v) in
        [("battery", battery), ("charging", charging), ("temperature", temp), ("memory", memory)]
    {
        println!("{k:<12} {v}");
    }
    for s in &r.missing {
        println!("{:<12} {}", "missing", s.missing_note());
    }
    for e in &r.errors {
        println!("{:<12} {e}", "sensor error");
    }
}
