//! What a node reports about itself: sent in every heartbeat, stored in the registry.

use serde::{Deserialize, Serialize};

/// A node's state as it reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Human name of the device.
    pub name: String,
    /// Models it serves.
    pub models: Vec<String>,
    /// Measured generation speed, tokens per second.
    pub tokens_per_s: f64,
    /// Requests queued or running.
    pub queue_depth: u32,
    /// Most requests it takes at once.
    pub queue_capacity: u32,
    /// Paused by its battery/thermal guard.
    pub paused: bool,
    /// Free memory in MiB, when known.
    pub free_ram_mb: Option<u64>,
    /// CPU cores, when known.
    pub cores: Option<u32>,
    /// Battery charge in percent, when the device has one.
    pub battery_pct: Option<f64>,
    /// Whether it is charging, when known.
    pub charging: Option<bool>,
    /// Hottest thermal zone in °C, when known.
    pub temperature_c: Option<f64>,
    /// Its nova version.
    pub version: String,
    /// The documents it shares for retrieval (`None`: it shares none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knowledge: Option<crate::knowledge::KnowledgeSummary>,
}
