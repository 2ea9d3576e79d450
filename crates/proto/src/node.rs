//! What a node reports about itself: sent in every heartbeat, stored in the registry.

use serde::{Deserialize, Serialize};

use crate::knowledge::truncate_utf8;

/// Most bytes of a node's name, and of its version string, kept from a peer.
pub(crate) const MAX_NODE_NAME_BYTES: usize = 64;
/// Most models a node's status lists, and most bytes of each name.
const MAX_MODELS: usize = 16;
const MAX_MODEL_NAME_BYTES: usize = 128;

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

impl NodeStatus {
    /// Holds a status a peer sent to the bounds a well-behaved node keeps: the name and version
    /// cut to [`MAX_NODE_NAME_BYTES`], at most 16 models of 128 bytes. The name travels on into
    /// every swarm view, trace and citation, so a peer cannot make those grow.
    pub fn bounded(mut self) -> Self {
        truncate_utf8(&mut self.name, MAX_NODE_NAME_BYTES);
        truncate_utf8(&mut self.version, MAX_NODE_NAME_BYTES);
        self.models.truncate(MAX_MODELS);
        for m in &mut self.models {
            truncate_utf8(m, MAX_MODEL_NAME_BYTES);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_cannot_send_an_unbounded_status() {
        let s = NodeStatus {
            name: "é".repeat(1 << 19),
            models: vec!["m".repeat(1000); 10_000],
            tokens_per_s: 1.0,
            queue_depth: 0,
            queue_capacity: 1,
            paused: false,
            free_ram_mb: None,
            cores: None,
            battery_pct: None,
            charging: None,
            temperature_c: None,
            version: "v".repeat(10_000),
            knowledge: None,
        }
        .bounded();
        assert!(s.name.len() <= MAX_NODE_NAME_BYTES && s.name.starts_with('é'));
        assert_eq!(s.version.len(), MAX_NODE_NAME_BYTES);
        assert_eq!(s.models.len(), MAX_MODELS);
        assert!(s.models.iter().all(|m| m.len() == MAX_MODEL_NAME_BYTES));
    }
}
