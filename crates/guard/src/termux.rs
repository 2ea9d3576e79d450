//! `termux-battery-status`: Android's own battery service, as Termux:API exposes it. Under
//! Termux most of sysfs is hidden by SELinux, so this is often the only battery source a phone
//! has.

use std::{
    io::Read as _,
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde::Deserialize;

use crate::{sysfs::PLAUSIBLE_TEMP_C, SensorError};

/// Its JSON is a few hundred bytes; more than this is not termux-battery-status.
const MAX_OUTPUT: u64 = 64 * 1024;

/// What it reported.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Battery {
    pub(crate) pct: Option<f32>,
    pub(crate) charging: Option<bool>,
    pub(crate) temp_c: Option<f32>,
}

/// The fields we use of its output, which looks like `{"health":"GOOD","percentage":85,
/// "plugged":"PLUGGED_AC","status":"CHARGING","temperature":29.1}` (plus fields we ignore).
#[derive(Debug, Deserialize)]
struct Status {
    percentage: Option<f64>,
    plugged: Option<String>,
    status: Option<String>,
    temperature: Option<f64>,
}

/// Runs `cmd` with a deadline and parses its output.
///
/// Blocks for up to `timeout`. On timeout the command is killed; a grandchild it started (the
/// `termux-api` helper) may outlive it holding the pipe, so the output is read on a detached
/// thread that ends when the pipe closes, instead of being joined here.
pub(crate) fn read(cmd: &Path, timeout: Duration) -> Result<Battery, SensorError> {
    let deadline = Instant::now() + timeout;
    let spawn_err = |e: std::io::Error| SensorError::TermuxSpawn {
        cmd: cmd.to_path_buf(),
        reason: e.to_string(),
    };
    let timed_out = || SensorError::TermuxTimeout {
        cmd: cmd.to_path_buf(),
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
    };
    let output_err = |reason: String| SensorError::TermuxOutput { cmd: cmd.to_path_buf(), reason };

    let mut child = Command::new(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(spawn_err)?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(output_err("no stdout pipe".into()));
    };
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let res = stdout.take(MAX_OUTPUT + 1).read_to_end(&mut buf).map(|_| buf);
        let _ = tx.send(res);
    });

    let out = rx.recv_timeout(timeout);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let (Some(status), Ok(out)) = (status, out) else { return Err(timed_out()) };
    let out = out.map_err(|e| output_err(format!("reading its output: {e}")))?;
    // Checked before the exit status: a command that printed too much was cut off and dies of
    // SIGPIPE, and the size is the real problem.
    if out.len() as u64 > MAX_OUTPUT {
        return Err(output_err(format!("printed more than {MAX_OUTPUT} bytes")));
    }
    if !status.success() {
        return Err(output_err(format!("exited with {status}")));
    }
    parse(&out).map_err(output_err)
}

fn parse(out: &[u8]) -> Result<Battery, String> {
    let s: Status = serde_json::from_slice(out).map_err(|e| format!("invalid JSON: {e}"))?;
    #[allow(clippy::cast_possible_truncation)] // percentages and °C fit f32
    let pct = s.percentage.filter(|p| (0.0..=100.0).contains(p)).map(|p| p as f32);
    #[allow(clippy::cast_possible_truncation)]
    let temp_c = s.temperature.map(|t| t as f32).filter(|t| PLAUSIBLE_TEMP_C.contains(t));
    let plugged = s.plugged.as_deref().map(|p| p != "UNPLUGGED");
    let by_status = match s.status.as_deref() {
        Some("CHARGING" | "FULL") => Some(true),
        Some("DISCHARGING" | "NOT_CHARGING") => Some(false),
        _ => None,
    };
    let charging = match (plugged, by_status) {
        (None, None) => None,
        (p, c) => Some(p == Some(true) || c == Some(true)),
    };
    Ok(Battery { pct, charging, temp_c })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_output_and_rejects_nonsense() {
        let b = parse(
            br#"{"present":true,"technology":"Li-ion","health":"GOOD","percentage":85,
                "plugged":"UNPLUGGED","status":"DISCHARGING","temperature":29.100000381469727,
                "current":-312000}"#,
        );
        assert_eq!(b, Ok(Battery { pct: Some(85.0), charging: Some(false), temp_c: Some(29.1) }));
        let b = parse(br#"{"percentage":140,"plugged":"PLUGGED_USB","temperature":-300}"#);
        assert_eq!(b, Ok(Battery { pct: None, charging: Some(true), temp_c: None }));
        assert_eq!(parse(b"{}"), Ok(Battery::default()));
        assert!(parse(b"API not installed").is_err());
    }
}
