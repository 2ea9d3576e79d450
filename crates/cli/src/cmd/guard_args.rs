//! Device-guard options shared by the commands that run a guard.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use nova_guard::{Config, Guard, Sources};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct GuardArgs {
    /// Pause (finish the current task, take no new ones) below this battery % when not charging.
    #[arg(long, env = "NOVA_GUARD_PAUSE_BELOW_BATTERY", default_value_t = 30.0)]
    pause_below_battery: f32,
    /// Once paused, resume at or above this battery % (or when charging).
    #[arg(long, env = "NOVA_GUARD_RESUME_AT_BATTERY", default_value_t = 35.0)]
    resume_at_battery: f32,
    /// Pause above this temperature, °C.
    #[arg(long, env = "NOVA_GUARD_PAUSE_ABOVE_TEMP", default_value_t = 45.0)]
    pause_above_temp: f32,
    /// Once paused, resume at or below this temperature, °C.
    #[arg(long, env = "NOVA_GUARD_RESUME_AT_TEMP", default_value_t = 40.0)]
    resume_at_temp: f32,
    /// How often the sensors are read, in milliseconds.
    #[arg(long, env = "NOVA_GUARD_INTERVAL_MS", default_value_t = 5_000)]
    guard_interval_ms: u64,
    /// Read sysfs from this directory instead of /sys (for tests). Termux is then not used
    /// unless --guard-termux-cmd names it, so a fake tree stays isolated.
    #[arg(long, hide = true, alias = "sysfs-root")]
    guard_sysfs_root: Option<PathBuf>,
    /// Read procfs from this directory instead of /proc (for tests).
    #[arg(long, hide = true, alias = "proc-root")]
    guard_proc_root: Option<PathBuf>,
    /// Run this as `termux-battery-status` instead of looking it up on PATH (for tests).
    #[arg(long, hide = true, alias = "termux-cmd")]
    guard_termux_cmd: Option<PathBuf>,
}

impl GuardArgs {
    /// The sources, the policy with these thresholds, and the reading interval.
    pub(crate) fn build(&self) -> anyhow::Result<(Sources, Guard, Duration)> {
        let termux = match (&self.guard_termux_cmd, &self.guard_sysfs_root) {
            (Some(cmd), _) => Some(cmd.clone()),
            (None, Some(_)) => None,
            (None, None) => std::env::var_os("PATH")
                .and_then(|p| nova_guard::find_in_path(nova_guard::TERMUX_BATTERY_STATUS, &p)),
        };
        let sources = Sources::new(
            self.guard_sysfs_root.clone().unwrap_or_else(|| "/sys".into()),
            self.guard_proc_root.clone().unwrap_or_else(|| "/proc".into()),
        )
        .with_termux(termux);
        let guard = Guard::new(Config {
            pause_below_battery_pct: self.pause_below_battery,
            resume_at_battery_pct: self.resume_at_battery,
            pause_above_temp_c: self.pause_above_temp,
            resume_at_temp_c: self.resume_at_temp,
        })
        .context("guard thresholds")?;
        Ok((sources, guard, Duration::from_millis(self.guard_interval_ms.max(100))))
    }
}
