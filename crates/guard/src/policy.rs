//! The pause/resume policy: a small state machine over readings, with hysteresis so a device
//! hovering at a threshold does not flap between taking and refusing work.

use std::{
    collections::{BTreeSet, HashSet},
    fmt,
};

use serde::{Deserialize, Serialize};

use crate::{ConfigError, Reading, Sensor, SensorError};

/// Distinct sensor errors remembered for "report once". Errors name files, so their number is
/// bounded by the tree; the cap only guards against a driver that embeds changing values.
const MAX_REMEMBERED_ERRORS: usize = 64;

/// The guard's thresholds. Every field has a default, so a config file may set only some.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Pause when the battery is below this percentage and the device is not charging.
    /// Default 30.
    pub pause_below_battery_pct: f32,
    /// Once paused, the battery no longer holds the pause at or above this percentage, or while
    /// charging. Default 35.
    pub resume_at_battery_pct: f32,
    /// Pause when the hottest sensor is above this, in °C. Default 45.
    pub pause_above_temp_c: f32,
    /// Once paused, heat no longer holds the pause at or below this, in °C. Default 40.
    pub resume_at_temp_c: f32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            pause_below_battery_pct: 30.0,
            resume_at_battery_pct: 35.0,
            pause_above_temp_c: 45.0,
            resume_at_temp_c: 40.0,
        }
    }
}

impl Config {
    /// Checks that every threshold is finite and that each resume threshold leaves a hysteresis
    /// band on the safe side of its pause threshold (an empty band is allowed).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, v) in [
            ("pause_below_battery_pct", self.pause_below_battery_pct),
            ("resume_at_battery_pct", self.resume_at_battery_pct),
            ("pause_above_temp_c", self.pause_above_temp_c),
            ("resume_at_temp_c", self.resume_at_temp_c),
        ] {
            if !v.is_finite() {
                return Err(ConfigError::NotFinite { field });
            }
        }
        if self.resume_at_battery_pct < self.pause_below_battery_pct {
            return Err(ConfigError::NoHysteresis {
                pause_field: "pause_below_battery_pct",
                pause: self.pause_below_battery_pct,
                resume_field: "resume_at_battery_pct",
                resume: self.resume_at_battery_pct,
                relation: "at least",
            });
        }
        if self.resume_at_temp_c > self.pause_above_temp_c {
            return Err(ConfigError::NoHysteresis {
                pause_field: "pause_above_temp_c",
                pause: self.pause_above_temp_c,
                resume_field: "resume_at_temp_c",
                resume: self.resume_at_temp_c,
                relation: "at most",
            });
        }
        Ok(())
    }
}

/// Why the node is paused.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// The battery is low and not known to be charging.
    LowBattery {
        /// Charge in percent.
        pct: f32,
        /// `None` when the device does not say; that counts as not charging.
        charging: Option<bool>,
    },
    /// Too hot.
    Hot {
        /// The hottest sensor, °C.
        temp_c: f32,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LowBattery { pct, charging: Some(_) } => {
                write!(f, "battery {pct:.0} % and not charging")
            }
            Self::LowBattery { pct, charging: None } => {
                write!(f, "battery {pct:.0} % and charging state unknown")
            }
            Self::Hot { temp_c } => write!(f, "temperature {temp_c:.1} °C"),
        }
    }
}

/// A transition, reported by the observation that caused it (and only that one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The node stopped taking new tasks (a running task may finish).
    Paused,
    /// The node takes tasks again.
    Resumed,
}

/// What the guard made of one reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    /// Whether the node should refuse new tasks now.
    pub paused: bool,
    /// While paused, what still holds the pause (against the resume thresholds); empty when
    /// running.
    pub reasons: Vec<Reason>,
    /// Set when this reading paused or resumed the node.
    pub change: Option<Change>,
    /// Sensors missing for the first time in this guard's life: log each once (see
    /// [`Sensor::missing_note`]). They are not reported again, even if they come and go.
    pub newly_missing: Vec<Sensor>,
    /// Sensor errors not reported before: log each once.
    #[serde(skip)]
    pub new_errors: Vec<SensorError>,
}

/// The pause/resume state machine.
///
/// Running → paused when the battery is below `pause_below_battery_pct` and not charging, or the
/// temperature is above `pause_above_temp_c`. Paused → running only when neither holds against
/// the resume thresholds. A missing sensor never pauses the node.
#[derive(Debug)]
pub struct Guard {
    config: Config,
    paused: bool,
    reported_missing: BTreeSet<Sensor>,
    reported_errors: HashSet<String>,
}

impl Guard {
    /// A running guard with these thresholds.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            paused: false,
            reported_missing: BTreeSet::new(),
            reported_errors: HashSet::new(),
        })
    }

    /// The thresholds.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether the last observation left the node paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Updates the state from `reading`.
    pub fn observe(&mut self, reading: &Reading) -> Observation {
        let c = &self.config;
        let reasons = if self.paused {
            reasons(reading, c.resume_at_battery_pct, c.resume_at_temp_c)
        } else {
            reasons(reading, c.pause_below_battery_pct, c.pause_above_temp_c)
        };
        let change = match (self.paused, reasons.is_empty()) {
            (false, false) => Some(Change::Paused),
            (true, true) => Some(Change::Resumed),
            _ => None,
        };
        self.paused = !reasons.is_empty();

        let newly_missing =
            reading.missing.iter().copied().filter(|s| self.reported_missing.insert(*s)).collect();
        let mut new_errors = Vec::new();
        for e in &reading.errors {
            if self.reported_errors.len() < MAX_REMEMBERED_ERRORS
                && self.reported_errors.insert(e.to_string())
            {
                new_errors.push(e.clone());
            }
        }
        Observation { paused: self.paused, reasons, change, newly_missing, new_errors }
    }
}

/// The conditions of `r` beyond the given battery floor and temperature ceiling.
fn reasons(r: &Reading, battery_floor: f32, temp_ceiling: f32) -> Vec<Reason> {
    let mut out = Vec::new();
    if let Some(pct) = r.battery_pct {
        if pct < battery_floor && r.charging != Some(true) {
            out.push(Reason::LowBattery { pct, charging: r.charging });
        }
    }
    if let Some(temp_c) = r.temp_c {
        if temp_c > temp_ceiling {
            out.push(Reason::Hot { temp_c });
        }
    }
    out
}

#[cfg(test)]
mod tests;
