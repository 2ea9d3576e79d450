//! Readings over fake sysfs/proc trees and a fake `termux-battery-status` script.

use std::{fs, os::unix::fs::PermissionsExt as _, path::PathBuf, time::Instant};

use super::*;
use crate::{Change, Config, Guard, Sensor, SensorError};

const MEMINFO: &str =
    "MemTotal:        3956736 kB\nMemFree:  200000 kB\nMemAvailable:    1048576 kB\n";

/// A fake root holding `sys/` and `proc/`.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("tempdir") }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn file(&self, rel: &str, content: impl AsRef<[u8]>) -> &Self {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, content).expect("write");
        self
    }

    fn supply(&self, name: &str, attrs: &[(&str, &str)]) -> &Self {
        for (k, v) in attrs {
            self.file(&format!("sys/class/power_supply/{name}/{k}"), format!("{v}\n"));
        }
        self
    }

    fn zone(&self, n: u32, millideg: &str) -> &Self {
        self.file(&format!("sys/class/thermal/thermal_zone{n}/temp"), format!("{millideg}\n"))
    }

    fn sources(&self) -> Sources {
        Sources::new(self.path("sys"), self.path("proc"))
    }

    /// An executable `sh` script; tests pass its path, so nothing touches the global PATH.
    fn script(&self, rel: &str, body: &str) -> PathBuf {
        self.file(rel, format!("#!/bin/sh\n{body}\n"));
        let p = self.path(rel);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }
}

fn has_garbage(errors: &[SensorError], file: &str) -> bool {
    errors.iter().any(|e| matches!(e, SensorError::Garbage { path, .. } if path.ends_with(file)))
}

#[test]
fn phone_battery_zones_and_memory() {
    let t = Tree::new();
    t.supply(
        "battery",
        &[("type", "Battery"), ("capacity", "22"), ("status", "Discharging"), ("temp", "312")],
    )
    .supply("usb", &[("type", "USB"), ("online", "0")])
    .supply("ac", &[("type", "Mains"), ("online", "0")])
    .zone(0, "35000")
    .zone(1, "47500")
    // Zones without a real sensor: ignored, not maxed over.
    .zone(2, "-273000")
    .zone(3, "255000")
    .zone(10, "2147483647")
    .file("proc/meminfo", MEMINFO);
    let r = t.sources().read();
    assert_eq!(r.battery_pct, Some(22.0));
    assert_eq!(r.charging, Some(false));
    assert_eq!(r.temp_c, Some(47.5));
    assert_eq!((r.free_ram_mb, r.total_ram_mb), (Some(1024), Some(3864)));
    assert_eq!(r.battery_source, Some(BatterySource::Sysfs));
    assert!(r.missing.is_empty() && r.errors.is_empty(), "{r:?}");
}

#[test]
fn battery_temperature_counts_when_it_is_the_hottest() {
    let t = Tree::new();
    t.supply("battery", &[("type", "Battery"), ("capacity", "50"), ("temp", "463")])
        .zone(0, "30000");
    assert_eq!(t.sources().read().temp_c, Some(46.3));
}

#[test]
fn laptop_on_ac_with_charge_limit_and_a_peripheral_battery() {
    let t = Tree::new();
    t.supply("BAT0", &[("type", "Battery"), ("capacity", "80"), ("status", "Not charging")])
        .supply("AC", &[("type", "Mains"), ("online", "1")])
        // A Bluetooth mouse's nearly empty battery says nothing about this machine.
        .supply(
            "hid-00:11:22:33:44:55-battery",
            &[
                ("type", "Battery"),
                ("scope", "Device"),
                ("capacity", "5"),
                ("status", "Discharging"),
            ],
        );
    let r = t.sources().read();
    assert_eq!(r.battery_pct, Some(80.0));
    assert_eq!(r.charging, Some(true), "AC online means not draining");
    let mut g = Guard::new(Config::default()).expect("guard");
    assert!(!g.observe(&r).paused);
}

#[test]
fn several_batteries_are_averaged_and_one_charging_is_enough() {
    let t = Tree::new();
    t.supply("BAT0", &[("type", "Battery"), ("capacity", "60"), ("status", "Discharging")])
        .supply("BAT1", &[("type", "Battery"), ("capacity", "40"), ("status", "Charging")]);
    let r = t.sources().read();
    assert_eq!(r.battery_pct, Some(50.0));
    assert_eq!(r.charging, Some(true));
}

#[test]
fn a_desktop_without_battery_or_thermal_zones_misses_them_quietly() {
    let t = Tree::new();
    t.file("sys/class/power_supply/.keep", "").file("proc/meminfo", MEMINFO);
    let r = t.sources().read();
    assert_eq!(r.missing, vec![Sensor::Battery, Sensor::Charging, Sensor::Temperature]);
    assert!(r.errors.is_empty(), "absence is not an error: {:?}", r.errors);
    assert_eq!(r.free_ram_mb, Some(1024));

    let nothing = Sources::new("/nonexistent/sys", "/nonexistent/proc").read();
    assert_eq!(nothing.missing, Sensor::ALL.to_vec());
    assert!(nothing.errors.is_empty());
}

#[test]
fn garbage_is_reported_and_ignored_without_panicking() {
    let t = Tree::new();
    t.supply(
        "BAT0",
        &[("type", "Battery"), ("capacity", "abc"), ("status", "Exploding"), ("temp", "")],
    )
    .supply("BAT1", &[("type", "Battery"), ("capacity", "250")])
    .supply("AC", &[("type", "Mains"), ("online", "yes")])
    .file("sys/class/power_supply/BAT2/type", "Battery\n")
    .file("sys/class/power_supply/BAT2/capacity", [0xff, 0xfe, 0x00, 0x41])
    .zone(0, "hot")
    .zone(1, "")
    .file("proc/meminfo", "MemTotal: many kB\n\0\0\0");
    let r = t.sources().read();
    assert_eq!(r.battery_pct, None, "250 % is not a charge");
    assert_eq!(r.charging, None);
    assert_eq!(r.temp_c, None);
    assert_eq!(r.missing, Sensor::ALL.to_vec());
    assert!(has_garbage(&r.errors, "BAT0/capacity"), "{:?}", r.errors);
    assert!(has_garbage(&r.errors, "AC/online"), "{:?}", r.errors);
    assert!(has_garbage(&r.errors, "thermal_zone0/temp"), "{:?}", r.errors);
    assert!(has_garbage(&r.errors, "BAT2/capacity"), "non-UTF-8: {:?}", r.errors);
}

#[test]
fn an_unreadable_attribute_is_an_error_and_the_rest_still_counts() {
    let t = Tree::new();
    // A directory where a file should be fails to read even as root (chmod would not).
    fs::create_dir_all(t.path("sys/class/power_supply/BAT0/capacity")).expect("mkdir");
    t.supply("BAT0", &[("type", "Battery"), ("status", "Charging")]).zone(0, "41000");
    let r = t.sources().read();
    assert_eq!((r.battery_pct, r.charging, r.temp_c), (None, Some(true), Some(41.0)));
    assert!(
        r.errors
            .iter()
            .any(|e| e.kind() == "unreadable" && e.to_string().contains("BAT0/capacity")),
        "{:?}",
        r.errors
    );
}

#[test]
fn termux_wins_over_sysfs_for_the_battery_and_temperatures_merge() {
    let t = Tree::new();
    t.supply(
        "battery",
        &[("type", "Battery"), ("capacity", "99"), ("status", "Charging"), ("temp", "300")],
    )
    .zone(0, "36000");
    let cmd = t.script(
        "bin/termux-battery-status",
        r#"cat <<'EOF'
{"percentage":64,"plugged":"UNPLUGGED","status":"DISCHARGING","temperature":38.5}
EOF"#,
    );
    let r = t.sources().with_termux(Some(cmd)).read();
    assert_eq!(r.battery_pct, Some(64.0));
    assert_eq!(r.charging, Some(false));
    assert_eq!(r.temp_c, Some(38.5), "the hottest of zones, sysfs battery and termux");
    assert_eq!(r.battery_source, Some(BatterySource::Termux));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

#[test]
fn each_termux_value_falls_back_to_sysfs_separately() {
    let t = Tree::new();
    t.supply("battery", &[("type", "Battery"), ("capacity", "70"), ("status", "Discharging")]);
    let cmd = t.script("bin/tbs", r#"echo '{"plugged":"PLUGGED_USB"}'"#);
    let r = t.sources().with_termux(Some(cmd)).read();
    assert_eq!(r.battery_pct, Some(70.0));
    assert_eq!(r.battery_source, Some(BatterySource::Sysfs));
    assert_eq!(r.charging, Some(true), "termux says plugged in");
}

#[test]
fn a_phone_with_only_termux_is_fully_guarded() {
    let t = Tree::new();
    let cmd = t.script(
        "bin/tbs",
        r#"echo '{"percentage":12,"plugged":"UNPLUGGED","status":"DISCHARGING","temperature":31}'"#,
    );
    let s = t.sources().with_termux(Some(cmd));
    let mut g = Guard::new(Config::default()).expect("guard");
    let o = g.observe(&s.read());
    assert_eq!(o.change, Some(Change::Paused));
    assert_eq!(o.reasons[0].to_string(), "battery 12 % and not charging");
    assert_eq!(o.newly_missing, vec![Sensor::Memory]);
}

#[test]
fn a_hanging_termux_is_killed_then_given_up_on() {
    let t = Tree::new();
    t.supply("battery", &[("type", "Battery"), ("capacity", "55")]);
    // What termux-battery-status does without the Termux:API app: wait forever.
    let cmd = t.script("bin/tbs", "exec sleep 30");
    let s = t.sources().with_termux(Some(cmd)).with_termux_timeout(Duration::from_millis(300));
    for _ in 0..TERMUX_MAX_FAILURES {
        let started = Instant::now();
        let r = s.read();
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(r.battery_pct, Some(55.0), "sysfs still answers");
        assert!(matches!(r.errors[..], [SensorError::TermuxTimeout { timeout_ms: 300, .. }]));
    }
    let started = Instant::now();
    let r = s.read();
    assert!(started.elapsed() < Duration::from_millis(250), "not run again");
    assert!(r.errors.is_empty());
}

#[test]
fn bad_termux_output_is_an_error_not_a_value() {
    let t = Tree::new();
    let cases = [
        ("fail", "echo '{\"percentage\":50}'; exit 3", "exited with"),
        ("text", "echo 'Termux:API is not installed'", "invalid JSON"),
        ("huge", "yes 0123456789abcdef | head -c 200000", "more than"),
    ];
    for (name, body, expect) in cases {
        let cmd = t.script(&format!("bin/{name}"), body);
        let r = t.sources().with_termux(Some(cmd)).read();
        assert_eq!(r.battery_pct, None, "{name}");
        match &r.errors[..] {
            [e @ SensorError::TermuxOutput { .. }] => {
                assert!(e.to_string().contains(expect), "{name}: {e}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    let missing = t.sources().with_termux(Some(t.path("bin/nope"))).read();
    assert!(matches!(missing.errors[..], [SensorError::TermuxSpawn { .. }]));
}

#[test]
fn termux_is_found_on_the_given_path_only_if_executable() {
    let t = Tree::new();
    t.file("a/termux-battery-status", "not executable");
    let exe = t.script("b/termux-battery-status", "true");
    let path = std::env::join_paths([t.path("none"), t.path("a"), t.path("b")]).expect("join");
    assert_eq!(find_in_path(TERMUX_BATTERY_STATUS, &path), Some(exe.clone()));
    assert_eq!(Sources::system(Some(&path)).termux_cmd(), Some(exe.as_path()));
    assert_eq!(Sources::system(None).termux_cmd(), None);
    let only_a = std::env::join_paths([t.path("a")]).expect("join");
    assert_eq!(find_in_path(TERMUX_BATTERY_STATUS, &only_a), None);
}

#[test]
fn a_draining_device_pauses_holds_and_resumes_over_real_reads() {
    let t = Tree::new();
    let set = |pct: &str, status: &str| {
        t.supply("battery", &[("type", "Battery"), ("capacity", pct), ("status", status)]);
    };
    t.file("proc/meminfo", MEMINFO);
    let s = t.sources();
    let mut g = Guard::new(Config::default()).expect("guard");

    set("31", "Discharging");
    let o = g.observe(&s.read());
    assert!(!o.paused);
    assert_eq!(o.newly_missing, vec![Sensor::Temperature], "no thermal zones, said once");
    set("29", "Discharging");
    let o = g.observe(&s.read());
    assert_eq!(o.change, Some(Change::Paused));
    assert!(o.newly_missing.is_empty());
    set("34", "Discharging");
    assert!(g.observe(&s.read()).paused, "hysteresis");
    set("35", "Discharging");
    assert_eq!(g.observe(&s.read()).change, Some(Change::Resumed));
}
