//! The live view of the swarm the router decides on.

use serde::{Deserialize, Serialize};

/// What the gateway knows about one worker, from its last heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    /// Stable worker id (the node's peer id).
    pub id: String,
    /// Human name of the device.
    pub name: String,
    /// Models it serves.
    pub models: Vec<String>,
    /// Generation speed it measured at start, tokens per second.
    pub tokens_per_s: f64,
    /// Requests queued or running on it.
    pub queue_depth: u32,
    /// Most requests it accepts at once.
    pub queue_capacity: u32,
    /// Paused by its battery/thermal guard.
    pub paused: bool,
    /// When its last heartbeat arrived, in ms on the gateway's clock.
    pub last_seen_ms: u64,
    /// Requests it generates at once (continuous batching); the rest of its queue waits.
    #[serde(default = "one")]
    pub slots: u32,
    /// Entry `k - 1`: tokens per second each stream got while `k` generated at once (0: not
    /// measured).
    #[serde(default)]
    pub stream_speeds: Vec<f64>,
}

fn one() -> u32 {
    1
}

impl WorkerView {
    /// Tokens per second a new request can expect here: what one stream measured at the load
    /// it would join (its own stream added), slowed by the requests that would wait ahead of it
    /// for a free sequence. A load not measured yet counts as batching gaining nothing (the
    /// single-stream speed shared by all), so an idle worker wins over a guess.
    pub fn expected_speed(&self) -> f64 {
        let slots = self.slots.max(1);
        let joined = self.queue_depth.saturating_add(1);
        let k = joined.min(slots);
        let per_stream = self
            .stream_speeds
            .get(k as usize - 1)
            .copied()
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(self.tokens_per_s.max(0.0) / f64::from(k));
        let waiting = joined - k;
        per_stream / (1.0 + f64::from(waiting) / f64::from(slots))
    }

    /// Sequences free to start a request at once.
    pub fn free_slots(&self) -> u32 {
        self.slots.max(1).saturating_sub(self.queue_depth)
    }
}

/// Why a worker may not take a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ineligible {
    /// No heartbeat within the staleness window.
    Stale,
    /// Paused by its guard.
    Paused,
    /// Does not serve the model asked for.
    WrongModel,
    /// Its queue is full.
    Busy,
}

/// A snapshot of the cluster at `now_ms`.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// Every registered worker.
    pub workers: Vec<WorkerView>,
    /// The gateway's clock when the snapshot was taken.
    pub now_ms: u64,
    /// A worker silent for longer than this is stale.
    pub stale_after_ms: u64,
}

impl ClusterView {
    /// Whether `w` may take a request for `model` (`None` = any model).
    pub fn check(&self, w: &WorkerView, model: Option<&str>) -> Result<(), Ineligible> {
        if self.now_ms.saturating_sub(w.last_seen_ms) > self.stale_after_ms {
            return Err(Ineligible::Stale);
        }
        if w.paused {
            return Err(Ineligible::Paused);
        }
        if let Some(m) = model {
            if !w.models.iter().any(|x| x == m) {
                return Err(Ineligible::WrongModel);
            }
        }
        if w.queue_depth >= w.queue_capacity {
            return Err(Ineligible::Busy);
        }
        Ok(())
    }

    /// The workers that may take a request for `model`.
    pub fn eligible(&self, model: Option<&str>) -> Vec<&WorkerView> {
        self.workers.iter().filter(|w| self.check(w, model).is_ok()).collect()
    }

    /// Every model some live worker serves, sorted and deduplicated.
    pub fn models(&self) -> Vec<String> {
        let mut m: Vec<String> = self
            .workers
            .iter()
            .filter(|w| self.now_ms.saturating_sub(w.last_seen_ms) <= self.stale_after_ms)
            .flat_map(|w| w.models.iter().cloned())
            .collect();
        m.sort();
        m.dedup();
        m
    }
}
