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
    /// How many requests its engine generates at once and how fast (`None`: one at a time, as
    /// nodes before continuous batching).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<Slots>,
    /// MiB of memory it offers to hold layers of a model pooled across the swarm (`--max-ram`,
    /// capped by what is free); `None` or 0: it holds none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_offer_mb: Option<u64>,
}

/// Most memory a node may claim to offer a pooled model, in MiB (1 TiB): a larger claim is
/// held to this, so the planner's sums cannot overflow.
pub const MAX_POOL_OFFER_MB: u64 = 1 << 20;

/// Most sequences a node may claim to generate at once (the engine's own limit).
pub const MAX_SLOTS: u32 = 64;

/// An engine's sequences: how many, how busy, how fast, and the memory they hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slots {
    /// Requests it generates at once.
    pub total: u32,
    /// Of those, generating now.
    pub running: u32,
    /// Entry `k - 1`: tokens per second each stream got while `k` generated at once, measured
    /// on recent steps (0: not measured yet).
    #[serde(default)]
    pub stream_speeds: Vec<f64>,
    /// The KV cache held for all sequences, sized when the model loaded, in MiB.
    #[serde(default)]
    pub kv_cache_mib: Option<u64>,
}

impl Slots {
    /// Held to what an engine can report: 1 to [`MAX_SLOTS`] sequences, as many speeds, each
    /// finite and not negative.
    pub fn bounded(mut self) -> Self {
        self.total = self.total.clamp(1, MAX_SLOTS);
        self.running = self.running.min(self.total);
        self.stream_speeds.truncate(self.total as usize);
        for s in &mut self.stream_speeds {
            if !s.is_finite() || *s < 0.0 {
                *s = 0.0;
            }
        }
        self
    }
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
        self.slots = self.slots.map(Slots::bounded);
        self.pool_offer_mb = self.pool_offer_mb.map(|mb| mb.min(MAX_POOL_OFFER_MB));
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
            slots: Some(Slots {
                total: u32::MAX,
                running: u32::MAX,
                stream_speeds: vec![f64::NAN; 100_000],
                kv_cache_mib: Some(u64::MAX),
            }),
            pool_offer_mb: Some(u64::MAX),
        }
        .bounded();
        assert_eq!(s.pool_offer_mb, Some(MAX_POOL_OFFER_MB));
        assert!(s.name.len() <= MAX_NODE_NAME_BYTES && s.name.starts_with('é'));
        assert_eq!(s.version.len(), MAX_NODE_NAME_BYTES);
        assert_eq!(s.models.len(), MAX_MODELS);
        assert!(s.models.iter().all(|m| m.len() == MAX_MODEL_NAME_BYTES));
        let slots = s.slots.unwrap();
        assert_eq!((slots.total, slots.running), (MAX_SLOTS, MAX_SLOTS));
        assert_eq!(slots.stream_speeds, vec![0.0; MAX_SLOTS as usize]);
    }
}
