//! Worker side of the device guard: reads the sensors on a timer, runs the pause policy, and
//! publishes the result for heartbeats and the task listener.

use std::{sync::Arc, time::Duration};

use nova_guard::{Change, Guard, Reading, Sources};
use tokio::sync::watch;

/// The device's latest health, as the guard saw it.
#[derive(Debug, Clone, Default)]
pub struct DeviceHealth {
    /// The latest reading.
    pub reading: Reading,
    /// Whether the node refuses new tasks.
    pub paused: bool,
    /// While paused, why (e.g. "battery 22 % and not charging").
    pub reasons: Vec<String>,
}

/// Starts the guard task: one reading every `interval`. The first reading is taken before this
/// returns, so the worker's hello already carries real values. The task ends when every
/// receiver is gone.
pub async fn spawn_guard(
    sources: Sources,
    mut guard: Guard,
    interval: Duration,
) -> watch::Receiver<DeviceHealth> {
    let sources = Arc::new(sources);
    let first = observe(&sources, &mut guard).await;
    let (tx, rx) = watch::channel(first);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let health = observe(&sources, &mut guard).await;
            if tx.send(health).is_err() {
                return;
            }
        }
    });
    rx
}

async fn observe(sources: &Arc<Sources>, guard: &mut Guard) -> DeviceHealth {
    // `termux-battery-status` is a subprocess (bounded by its own timeout): keep it off the
    // async threads.
    let s = sources.clone();
    let reading = tokio::task::spawn_blocking(move || s.read()).await.unwrap_or_default();
    let obs = guard.observe(&reading);
    for sensor in &obs.newly_missing {
        tracing::info!(sensor = %sensor, "{}", sensor.missing_note());
    }
    for e in &obs.new_errors {
        tracing::warn!(error = %e, "sensor error");
    }
    let reasons: Vec<String> = obs.reasons.iter().map(ToString::to_string).collect();
    match obs.change {
        Some(Change::Paused) => tracing::warn!(
            reasons = %reasons.join("; "),
            "guard: pausing (no new tasks; a running one finishes)"
        ),
        Some(Change::Resumed) => tracing::info!("guard: resuming"),
        None => {}
    }
    DeviceHealth { reading, paused: obs.paused, reasons }
}
