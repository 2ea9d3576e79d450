//! The swarm as a gateway shows it (`GET /v1/swarm`, the dashboard's live feed, `nova status`):
//! one typed shape for the producer and every reader, so none of them guesses at fields.

use serde::{Deserialize, Serialize};

use crate::NodeStatus;

/// A snapshot of every worker the gateway knows, live or recently departed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SwarmView {
    /// The gateway's clock when the snapshot was taken, in ms since the Unix epoch. Every other
    /// time in the view is on this clock.
    pub now_ms: u64,
    /// A worker silent for longer than this is `stale` and gets no work.
    pub stale_after_ms: u64,
    /// A departed worker is dropped from the view this long after it left. `None`: never
    /// (views from gateways that predate the setting).
    #[serde(default)]
    pub forget_after_ms: Option<u64>,
    /// Every model some live worker serves, sorted.
    pub models: Vec<String>,
    /// The workers, in the order they joined.
    pub workers: Vec<SwarmWorker>,
    /// Models pooled across devices (`nova serve --pool`): who holds which layers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolView>,
}

/// A model whose layers are split across devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolView {
    /// The model.
    pub model: String,
    /// `ready` (answering), `loading`, or `waiting` (not enough memory offered yet).
    pub state: String,
    /// Why it is not ready, or what it last lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The model's layers.
    pub layers: u32,
    /// Who holds what, in layer order: the head (this gateway) first.
    pub holders: Vec<PoolHolder>,
}

/// One device's part of a pooled model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolHolder {
    /// Its worker id (the gateway's own name for the head).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its first layer.
    pub first_layer: u32,
    /// How many layers it holds.
    pub layers: u32,
    /// Whether it is the head (embeddings, output and the first layers).
    pub head: bool,
    /// For a shard: its link's traffic since the pool loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<ShardTraffic>,
}

/// What went over one shard's link: a benchmark subtracts two readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardTraffic {
    /// Requests whose reply the head waited for: one network round trip each.
    pub round_trips: u64,
    /// Bytes sent to the shard.
    pub bytes_to_shard: u64,
    /// Bytes the shard sent back.
    pub bytes_from_shard: u64,
}

/// One worker in a [`SwarmView`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwarmWorker {
    /// What routing knows about it.
    pub worker: WorkerSummary,
    /// Whether it can take work now, and if not why.
    pub state: WorkerState,
    /// What it last reported about its device; `None` when it reports nothing beyond
    /// [`WorkerSummary`].
    #[serde(default)]
    pub status: Option<NodeStatus>,
    /// When its membership stream closed (ms, gateway clock); `None` while it is connected.
    #[serde(default)]
    pub left_at_ms: Option<u64>,
}

/// A worker's routing facts, as of its last heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerSummary {
    /// Stable worker id (the node's peer id, or `local-<host>` for the gateway's own engine).
    pub id: String,
    /// Human name of the device.
    pub name: String,
    /// Models it serves.
    pub models: Vec<String>,
    /// Generation speed measured at start, tokens per second (0 when unknown).
    pub tokens_per_s: f64,
    /// Requests queued or running on it.
    pub queue_depth: u32,
    /// Most requests it accepts at once.
    pub queue_capacity: u32,
    /// Paused by its battery/thermal guard.
    pub paused: bool,
    /// When its last heartbeat arrived (ms, gateway clock). Kept after it leaves, so a reader
    /// can say when it was last heard from; never 0 for a worker that said hello.
    pub last_seen_ms: u64,
}

/// Whether a worker can take work, and if not why. Precedence: `gone`, `stale`, `paused`,
/// `busy`, `ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Takes work.
    Ready,
    /// Its queue is full; takes work again as requests finish.
    Busy,
    /// Its device guard paused it (battery, heat); it stays connected.
    Paused,
    /// Connected, but no heartbeat within the staleness window.
    Stale,
    /// Its membership stream closed; listed until it is forgotten or rejoins.
    Gone,
}

impl WorkerState {
    /// The state's name as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Busy => "busy",
            Self::Paused => "paused",
            Self::Stale => "stale",
            Self::Gone => "gone",
        }
    }
}

impl std::fmt::Display for WorkerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_views_of_older_gateways_and_roundtrips() -> Result<(), serde_json::Error> {
        // The shape gateways sent before the view was typed: no forget_after_ms, no left_at_ms.
        let old = r#"{"now_ms":5,"stale_after_ms":30000,"models":["m"],"workers":[
            {"worker":{"id":"a","name":"n","models":["m"],"tokens_per_s":3.0,"queue_depth":0,
             "queue_capacity":2,"paused":false,"last_seen_ms":4},"state":"stale","status":null}]}"#;
        let v: SwarmView = serde_json::from_str(old)?;
        assert_eq!(v.workers[0].state, WorkerState::Stale);
        assert_eq!(v.workers[0].left_at_ms, None);
        assert_eq!(v.forget_after_ms, None);
        let again: SwarmView = serde_json::from_str(&serde_json::to_string(&v)?)?;
        assert_eq!(again, v);
        let gone: WorkerState = serde_json::from_str("\"gone\"")?;
        assert_eq!(gone.to_string(), "gone");
        Ok(())
    }
}
