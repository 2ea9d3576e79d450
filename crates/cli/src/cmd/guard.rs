//! `nova guard`: what the device guard sees here, and whether it would pause this node.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use nova_guard::{Config, Guard, Reading, Sources};
use serde_json::json;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Read sysfs from this directory instead of /sys (for tests).
    #[arg(long, hide = true)]
    sysfs_root: Option<PathBuf>,
    /// Read procfs from this directory instead of /proc (for tests).
    #[arg(long, hide = true)]
    proc_root: Option<PathBuf>,
    /// Run this as `termux-battery-status` instead of looking it up on PATH (for tests). With
    /// `--sysfs-root` and without this flag, Termux is not used, so fake trees stay isolated.
    #[arg(long, hide = true)]
    termux_cmd: Option<PathBuf>,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let termux = match (&args.termux_cmd, &args.sysfs_root) {
        (Some(cmd), _) => Some(cmd.clone()),
        (None, Some(_)) => None,
        (None, None) => std::env::var_os("PATH")
            .and_then(|p| nova_guard::find_in_path(nova_guard::TERMUX_BATTERY_STATUS, &p)),
    };
    let sources = Sources::new(
        args.sysfs_root.unwrap_or_else(|| "/sys".into()),
        args.proc_root.unwrap_or_else(|| "/proc".into()),
    )
    .with_termux(termux);
    // Blocking: may wait for termux-battery-status.
    let reading = tokio::task::spawn_blocking(move || sources.read())
        .await
        .context("the sensor reader panicked")?;
    let config = Config::default();
    let mut guard = Guard::new(config.clone()).context("guard thresholds")?;
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
