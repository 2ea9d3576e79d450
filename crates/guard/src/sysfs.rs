//! Linux sysfs: batteries and external supplies under `class/power_supply`, temperatures under
//! `class/thermal`. Every value is optional; a device exposes whatever its drivers do.

use std::{
    fs,
    io::ErrorKind,
    ops::RangeInclusive,
    path::{Path, PathBuf},
};

use crate::{
    fsread::{garbage, read_text, unreadable},
    SensorError,
};

/// Most entries looked at in one class directory. A phone has a few dozen thermal zones; the cap
/// only keeps a pathological (or fake) tree from making a reading unbounded.
const MAX_ENTRIES: usize = 256;
/// Sysfs attributes are a page at most.
const ATTR_LIMIT: u64 = 4096;
/// Temperatures outside this range (°C) are not readings: zones without a sensor report values
/// such as -273 °C, 255 °C or 2^31 millidegrees.
pub(crate) const PLAUSIBLE_TEMP_C: RangeInclusive<f32> = -40.0..=150.0;

/// What the power supplies say.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Power {
    pub(crate) battery_pct: Option<f32>,
    pub(crate) charging: Option<bool>,
    pub(crate) battery_temp_c: Option<f32>,
}

/// Reads `<sysfs_root>/class/power_supply/*`.
pub(crate) fn power(sysfs_root: &Path, errors: &mut Vec<SensorError>) -> Power {
    let mut capacities = Vec::new();
    let mut temps = Vec::new();
    // Some(true) as soon as anything says the device is on power; Some(false) when something
    // answered and nothing said so.
    let mut charging: Option<bool> = None;
    let mut note = |on_power: bool| charging = Some(charging == Some(true) || on_power);

    for dir in entries(&sysfs_root.join("class/power_supply"), "", errors) {
        let Some(kind) = attr(&dir, "type", errors) else { continue };
        // Batteries of peripherals (a Bluetooth mouse, a stylus) have scope "Device": they say
        // nothing about whether this machine is draining.
        if attr(&dir, "scope", errors).is_some_and(|s| s.eq_ignore_ascii_case("device")) {
            continue;
        }
        if kind == "Battery" {
            if let Some(pct) =
                number(&dir, "capacity", errors).filter(|p| (0.0..=100.0).contains(p))
            {
                capacities.push(pct);
            }
            match attr(&dir, "status", errors).as_deref() {
                Some("Charging" | "Full") => note(true),
                Some("Discharging" | "Not charging") => note(false),
                // "Unknown", or a driver's own word: no information either way.
                _ => {}
            }
            if let Some(t) = number(&dir, "temp", errors).map(|t| t / 10.0) {
                if PLAUSIBLE_TEMP_C.contains(&t) {
                    temps.push(t);
                }
            }
        } else if let Some(online) = number(&dir, "online", errors) {
            // USB-C supplies report 2 for "online, programmable".
            note(online > 0.0);
        }
    }
    Power {
        battery_pct: mean(&capacities),
        charging,
        battery_temp_c: temps.into_iter().reduce(f32::max),
    }
}

/// The hottest plausible `<sysfs_root>/class/thermal/thermal_zone*/temp`, in °C.
pub(crate) fn thermal(sysfs_root: &Path, errors: &mut Vec<SensorError>) -> Option<f32> {
    entries(&sysfs_root.join("class/thermal"), "thermal_zone", errors)
        .iter()
        .filter_map(|zone| number(zone, "temp", errors))
        .map(|milli| milli / 1000.0)
        .filter(|t| PLAUSIBLE_TEMP_C.contains(t))
        .reduce(f32::max)
}

/// The subdirectories of `dir` whose names start with `prefix`, sorted, at most
/// [`MAX_ENTRIES`]. A missing directory is simply empty.
fn entries(dir: &Path, prefix: &str, errors: &mut Vec<SensorError>) -> Vec<PathBuf> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            errors.push(unreadable(dir, &e));
            return Vec::new();
        }
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        // Class entries are symlinks to device directories; `is_dir` follows them and skips
        // stray files.
        .filter(|p| p.is_dir())
        .take(MAX_ENTRIES)
        .collect();
    out.sort();
    out
}

/// An attribute's trimmed text; absent, unreadable or empty gives `None` (errors noted).
fn attr(dir: &Path, name: &str, errors: &mut Vec<SensorError>) -> Option<String> {
    match read_text(&dir.join(name), ATTR_LIMIT) {
        Ok(Some(s)) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Ok(None) => None,
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

/// An attribute holding an integer; anything else is noted as garbage.
fn number(dir: &Path, name: &str, errors: &mut Vec<SensorError>) -> Option<f32> {
    let text = attr(dir, name, errors)?;
    match text.parse::<i64>() {
        // Sysfs integers are far inside f32's exact range for the values that survive the
        // plausibility checks; larger ones only need to stay large.
        #[allow(clippy::cast_precision_loss)]
        Ok(n) => Some(n as f32),
        Err(_) => {
            errors.push(garbage(&dir.join(name), &text));
            None
        }
    }
}

fn mean(values: &[f32]) -> Option<f32> {
    #[allow(clippy::cast_precision_loss)] // a handful of batteries
    let n = values.len() as f32;
    (!values.is_empty()).then(|| values.iter().sum::<f32>() / n)
}
