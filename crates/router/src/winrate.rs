//! Per-(worker, tag) win rates with exponential decay, for tag routing.
//!
//! Each record is a decayed count of wins and trials: old results fade with a configurable
//! half-life, so a worker that got better (or worse) is noticed. Scores use an upper confidence
//! bound, so a worker with few trials looks promising and keeps being tried: new workers are
//! never starved, and a poor one is retried now and then in case it improved.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One (worker, tag) record, for persistence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Worker id.
    pub worker: String,
    /// Topic tag.
    pub tag: String,
    /// Decayed wins.
    pub wins: f64,
    /// Decayed trials.
    pub trials: f64,
    /// When the counts were last decayed, in ms.
    pub at_ms: u64,
}

/// Decayed win rates.
#[derive(Debug, Clone)]
pub struct WinRates {
    half_life_ms: u64,
    exploration: f64,
    records: BTreeMap<(String, String), (f64, f64, u64)>,
}

impl WinRates {
    /// Empty rates with the given half-life (ms) and exploration weight (UCB constant; 0 = none).
    pub fn new(half_life_ms: u64, exploration: f64) -> Self {
        Self { half_life_ms: half_life_ms.max(1), exploration, records: BTreeMap::new() }
    }

    fn decay(&self, value: f64, from_ms: u64, to_ms: u64) -> f64 {
        let dt = to_ms.saturating_sub(from_ms) as f64;
        value * 0.5f64.powf(dt / self.half_life_ms as f64)
    }

    /// Records that `worker` took part in a contest for `tag` and whether it won.
    pub fn record(&mut self, worker: &str, tag: &str, won: bool, now_ms: u64) {
        let key = (worker.to_string(), tag.to_string());
        let (w, t, at) = self.records.get(&key).copied().unwrap_or((0.0, 0.0, now_ms));
        let (w, t) = (self.decay(w, at, now_ms), self.decay(t, at, now_ms));
        self.records.insert(key, (w + f64::from(u8::from(won)), t + 1.0, now_ms));
    }

    /// (decayed wins, decayed trials) of `worker` for `tag` at `now_ms`.
    pub fn counts(&self, worker: &str, tag: &str, now_ms: u64) -> (f64, f64) {
        match self.records.get(&(worker.to_string(), tag.to_string())) {
            Some(&(w, t, at)) => (self.decay(w, at, now_ms), self.decay(t, at, now_ms)),
            None => (0.0, 0.0),
        }
    }

    /// Estimated win rate with a uniform prior: 0.5 for a worker never seen.
    pub fn rate(&self, worker: &str, tag: &str, now_ms: u64) -> f64 {
        let (w, t) = self.counts(worker, tag, now_ms);
        (w + 1.0) / (t + 2.0)
    }

    /// The routing score: rate plus an exploration bonus that shrinks with trials.
    /// `total_trials` is the number of contests for this tag across all workers.
    pub fn score(&self, worker: &str, tag: &str, total_trials: f64, now_ms: u64) -> f64 {
        let (_, t) = self.counts(worker, tag, now_ms);
        let bonus = self.exploration * ((total_trials + 1.0).ln().max(0.0) / (t + 1.0)).sqrt();
        self.rate(worker, tag, now_ms) + bonus
    }

    /// Decayed trials of every worker for `tag`.
    pub fn total_trials(&self, tag: &str, now_ms: u64) -> f64 {
        self.records
            .iter()
            .filter(|((_, t), _)| t == tag)
            .map(|(_, &(_, n, at))| self.decay(n, at, now_ms))
            .sum()
    }

    /// Every record, for persistence.
    pub fn records(&self) -> Vec<Record> {
        self.records
            .iter()
            .map(|((worker, tag), &(wins, trials, at_ms))| Record {
                worker: worker.clone(),
                tag: tag.clone(),
                wins,
                trials,
                at_ms,
            })
            .collect()
    }

    /// Restores records saved by [`Self::records`].
    pub fn restore(&mut self, records: impl IntoIterator<Item = Record>) {
        for r in records {
            self.records.insert((r.worker, r.tag), (r.wins, r.trials, r.at_ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;

    #[test]
    fn wins_raise_the_rate_and_fade_with_the_half_life() {
        let mut r = WinRates::new(HOUR, 0.0);
        assert_eq!(r.rate("a", "math", 0), 0.5);
        for _ in 0..8 {
            r.record("a", "math", true, 0);
        }
        assert!((r.rate("a", "math", 0) - 0.9).abs() < 1e-9);
        let (w, t) = r.counts("a", "math", HOUR);
        assert!((w - 4.0).abs() < 1e-9 && (t - 4.0).abs() < 1e-9);
        // After many half-lives the record is forgotten and the prior is back.
        assert!((r.rate("a", "math", 40 * HOUR) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn exploration_favours_the_untried() {
        let mut r = WinRates::new(HOUR, 1.0);
        for _ in 0..20 {
            r.record("old", "code", true, 0);
        }
        let total = r.total_trials("code", 0);
        assert!(r.score("new", "code", total, 0) > r.score("old", "code", total, 0));
    }

    #[test]
    fn records_roundtrip() {
        let mut r = WinRates::new(HOUR, 0.5);
        r.record("a", "x", true, 10);
        r.record("b", "x", false, 20);
        let mut back = WinRates::new(HOUR, 0.5);
        back.restore(r.records());
        assert_eq!(back.records(), r.records());
    }
}
