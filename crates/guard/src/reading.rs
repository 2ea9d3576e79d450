//! One snapshot of the device's health, and the names of the sensors it can lack.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::SensorError;

/// One snapshot of the device's health. `None` means the device did not tell; see `missing`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reading {
    /// Battery charge in percent (0–100). With several system batteries, their mean.
    pub battery_pct: Option<f32>,
    /// Whether the device is on external power: a battery reports charging or full, or an
    /// AC/USB/wireless supply is online. A laptop whose battery says "Not charging" (a charge
    /// limit) while its AC adapter is online counts as charging: it is not draining.
    pub charging: Option<bool>,
    /// The hottest plausible temperature in °C over the thermal zones and the battery.
    pub temp_c: Option<f32>,
    /// Memory available for new work (`MemAvailable`), in MiB.
    pub free_ram_mb: Option<u64>,
    /// Total memory, in MiB.
    pub total_ram_mb: Option<u64>,
    /// Where the battery values came from, when there are any.
    pub battery_source: Option<BatterySource>,
    /// Sensors this device does not have (or that could not be read), in [`Sensor`] order.
    pub missing: Vec<Sensor>,
    /// Sensors that exist but failed; each is also counted as missing if nothing else gave
    /// its value.
    #[serde(serialize_with = "as_strings")]
    pub errors: Vec<SensorError>,
}

fn as_strings<S: Serializer>(errors: &[SensorError], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(errors.iter().map(ToString::to_string))
}

impl Reading {
    /// Recomputes `missing` from the values.
    pub(crate) fn fill_missing(&mut self) {
        self.missing = Sensor::ALL
            .into_iter()
            .filter(|s| match s {
                Sensor::Battery => self.battery_pct.is_none(),
                Sensor::Charging => self.charging.is_none(),
                Sensor::Temperature => self.temp_c.is_none(),
                Sensor::Memory => self.free_ram_mb.is_none() || self.total_ram_mb.is_none(),
            })
            .collect();
    }
}

/// Where battery values came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatterySource {
    /// `/sys/class/power_supply`.
    Sysfs,
    /// `termux-battery-status` (Android's own battery service).
    Termux,
}

/// A kind of sensor the guard uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sensor {
    /// Battery charge.
    Battery,
    /// Charging / external power.
    Charging,
    /// Temperature.
    Temperature,
    /// Free and total memory.
    Memory,
}

impl Sensor {
    /// Every sensor, in a fixed order.
    pub const ALL: [Sensor; 4] = [Self::Battery, Self::Charging, Self::Temperature, Self::Memory];

    /// One sentence for the log saying what its absence means for the node.
    pub fn missing_note(self) -> &'static str {
        match self {
            Self::Battery => "no battery found: low battery will never pause this node",
            Self::Charging => "charging state unknown: a low battery counts as not charging",
            Self::Temperature => "no temperature sensor found: heat will never pause this node",
            Self::Memory => "free memory unknown (/proc/meminfo unreadable)",
        }
    }
}

impl fmt::Display for Sensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Battery => "battery",
            Self::Charging => "charging state",
            Self::Temperature => "temperature",
            Self::Memory => "memory",
        })
    }
}
