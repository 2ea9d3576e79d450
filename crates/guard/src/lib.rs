//! Device health for nova-swarm nodes: battery charge, charging state, temperature and free
//! memory, and the policy that pauses a node before it drains its battery or cooks itself.
//!
//! Reading ([`Sources::read`]) and deciding ([`Guard::observe`]) are separate, so the policy is
//! a pure state machine and the readers can be pointed at fake trees in tests. Everything here is
//! synchronous and bounded: the only thing that can take time is `termux-battery-status`, which
//! runs under a timeout. Library code never reads environment variables; callers pass `PATH`.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod error;
mod fsread;
mod meminfo;
mod policy;
mod reading;
mod sources;
mod sysfs;
mod termux;

pub use error::{ConfigError, SensorError};
pub use policy::{Change, Config, Guard, Observation, Reason};
pub use reading::{BatterySource, Reading, Sensor};
pub use sources::{find_in_path, Sources, TERMUX_BATTERY_STATUS};
