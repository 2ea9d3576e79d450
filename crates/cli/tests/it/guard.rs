//! `nova guard` over fake sysfs/proc trees: the real binary, no real sensors.

use std::{fs, os::unix::fs::PermissionsExt as _, path::Path, time::Duration};

use serde_json::Value;

use crate::{nova, run, stderr, stdout};

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, content).expect("write");
}

/// A hot phone on a low, draining battery.
fn hot_phone(root: &Path) {
    for (k, v) in [("type", "Battery"), ("capacity", "22"), ("status", "Discharging")] {
        write(root, &format!("sys/class/power_supply/battery/{k}"), &format!("{v}\n"));
    }
    write(root, "sys/class/power_supply/usb/type", "USB\n");
    write(root, "sys/class/power_supply/usb/online", "0\n");
    write(root, "sys/class/thermal/thermal_zone0/temp", "47500\n");
    write(root, "sys/class/thermal/thermal_zone1/temp", "-273000\n");
    write(root, "proc/meminfo", "MemTotal: 2048000 kB\nMemAvailable: 512000 kB\n");
}

fn guard(home: &Path, root: &Path, extra: &[&str]) -> std::process::Output {
    let out = run(
        nova(home)
            .arg("guard")
            .arg("--sysfs-root")
            .arg(root.join("sys"))
            .arg("--proc-root")
            .arg(root.join("proc"))
            .args(extra),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

#[test]
fn reports_a_reading_and_would_pause_a_hot_draining_phone() {
    let home = tempfile::tempdir().expect("tempdir");
    let root = tempfile::tempdir().expect("tempdir");
    hot_phone(root.path());

    let text = stdout(&guard(home.path(), root.path(), &[]));
    assert!(text.contains("battery      22 % (sysfs)"), "{text}");
    assert!(text.contains("temperature  47.5 °C"), "{text}");
    assert!(text.contains("memory       500 MiB free of 2000 MiB"), "{text}");
    assert!(
        text.contains("would pause: battery 22 % and not charging; temperature 47.5 °C"),
        "{text}"
    );

    let v: Value = serde_json::from_str(&stdout(&guard(home.path(), root.path(), &["--json"])))
        .expect("one JSON object");
    assert_eq!(v["would_pause"], true);
    assert_eq!(v["reading"]["battery_pct"], 22.0);
    assert_eq!(v["reading"]["charging"], false);
    assert_eq!(v["reading"]["temp_c"], 47.5);
    assert_eq!(v["reading"]["missing"], serde_json::json!([]));
    assert_eq!(v["thresholds"]["pause_below_battery_pct"], 30.0);

    // A one-shot command leaves no log files behind.
    assert!(!home.path().join("logs").exists());
}

#[test]
fn termux_overrides_the_battery_and_missing_sensors_are_listed() {
    let home = tempfile::tempdir().expect("tempdir");
    let root = tempfile::tempdir().expect("tempdir");
    hot_phone(root.path());
    let script = root.path().join("termux-battery-status");
    fs::write(
        &script,
        concat!(
            "#!/bin/sh\necho '{\"percentage\":80,\"plugged\":\"PLUGGED_AC\",",
            "\"status\":\"CHARGING\",\"temperature\":33.5}'\n"
        ),
    )
    .expect("write");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    let arg = script.to_str().expect("utf-8 path");
    let out = guard(home.path(), root.path(), &["--json", "--termux-cmd", arg]);
    let v: Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(v["reading"]["battery_pct"], 80.0);
    assert_eq!(v["reading"]["battery_source"], "termux");
    assert_eq!(v["reasons"], serde_json::json!(["temperature 47.5 °C"]), "{v}");

    // An empty tree: nothing known, nothing to pause for, and each absence said.
    let empty = tempfile::tempdir().expect("tempdir");
    let out = guard(home.path(), empty.path(), &[]);
    let text = stdout(&out);
    assert!(text.contains("would run"), "{text}");
    for note in ["no battery found", "no temperature sensor found", "free memory unknown"] {
        assert!(text.contains(note), "{note}: {text}");
    }
}

#[test]
fn a_termux_battery_status_on_path_is_found_and_read() {
    let home = tempfile::tempdir().expect("tempdir");
    let bin = tempfile::tempdir().expect("tempdir");
    let script = bin.path().join("termux-battery-status");
    fs::write(
        &script,
        concat!(
            "#!/bin/sh\necho '{\"percentage\":17,\"plugged\":\"UNPLUGGED\",",
            "\"status\":\"DISCHARGING\",\"temperature\":31.0}'\n"
        ),
    )
    .expect("write");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    // No --sysfs-root and no --termux-cmd: the real /sys, and Termux found through PATH, as on
    // a phone.
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let out =
        run(nova(home.path()).env("PATH", path).args(["guard", "--json"]), Duration::from_secs(30));
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(v["reading"]["battery_source"], "termux", "{v}");
    assert_eq!(v["reading"]["battery_pct"], 17.0, "{v}");
    assert_eq!(v["reading"]["charging"], false, "{v}");
    assert_eq!(v["would_pause"], true, "{v}");
}
