//! Per-(worker, tag) win rates with exponential decay, for tag routing.
//!
//! Each record is a decayed count of wins and trials: old results fade with a configurable
//! half-life, so a worker that got better (or worse) is noticed. Scores use an upper confidence
//! bound, so a worker with few trials looks promising and keeps being tried: new workers are
//! never starved, and a poor one is retried now and then in case it improved.

use std::collections::{BTreeSet, HashMap};

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

/// Most (worker, tag) records kept by default. The least recently updated go first.
pub const DEFAULT_MAX_RECORDS: usize = 16_384;

/// One worker's decayed counts for one tag.
#[derive(Debug, Clone, Copy)]
struct Counts {
    wins: f64,
    trials: f64,
    at_ms: u64,
}

/// Everything known about one tag: each worker's counts and their decayed sum, kept up to date
/// on every record so that routing never walks the table.
#[derive(Debug, Clone, Default)]
struct TagEntry {
    workers: HashMap<String, Counts>,
    /// Decayed trials of every worker for this tag, as of `total_at_ms`. Decay is the same
    /// exponential for every record, so the decayed sum is the sum of the decayed counts.
    total: f64,
    total_at_ms: u64,
}

/// Decayed win rates, indexed by tag and bounded in size.
///
/// Lookups are by (tag, worker) in hash maps, and each tag keeps its total trials, so scoring
/// a request costs O(tags × workers) whatever the table holds. The table keeps at most
/// `max_records` records; recording past that evicts the least recently updated ones, found
/// through an ordered index, so memory stays bounded however many tags and workers pass by.
#[derive(Debug, Clone)]
pub struct WinRates {
    half_life_ms: u64,
    exploration: f64,
    max_records: usize,
    tags: HashMap<String, TagEntry>,
    /// (updated at, tag, worker) of every record: the eviction order.
    by_age: BTreeSet<(u64, String, String)>,
}

impl WinRates {
    /// Empty rates with the given half-life (ms) and exploration weight (UCB constant; 0 = none).
    pub fn new(half_life_ms: u64, exploration: f64) -> Self {
        Self {
            half_life_ms: half_life_ms.max(1),
            exploration,
            max_records: DEFAULT_MAX_RECORDS,
            tags: HashMap::new(),
            by_age: BTreeSet::new(),
        }
    }

    /// Keeps at most `n` records (at least 1).
    pub fn with_max_records(mut self, n: usize) -> Self {
        self.max_records = n.max(1);
        self
    }

    /// Records kept now.
    pub fn len(&self) -> usize {
        self.by_age.len()
    }

    /// Whether no record is kept.
    pub fn is_empty(&self) -> bool {
        self.by_age.is_empty()
    }

    fn decay(&self, value: f64, from_ms: u64, to_ms: u64) -> f64 {
        let dt = to_ms.saturating_sub(from_ms) as f64;
        value * 0.5f64.powf(dt / self.half_life_ms as f64)
    }

    /// Records that `worker` took part in a contest for `tag` and whether it won. Returns the
    /// (worker, tag) keys evicted to stay within the bound, so a persistent copy can drop them.
    pub fn record(
        &mut self,
        worker: &str,
        tag: &str,
        won: bool,
        now_ms: u64,
    ) -> Vec<(String, String)> {
        let half_life = self.half_life_ms;
        let decay = |v: f64, from: u64| {
            v * 0.5f64.powf(now_ms.saturating_sub(from) as f64 / half_life as f64)
        };
        let entry = self.tags.entry(tag.to_string()).or_default();
        entry.total = decay(entry.total, entry.total_at_ms) + 1.0;
        entry.total_at_ms = now_ms.max(entry.total_at_ms);
        let old = entry.workers.get(worker).copied();
        let (w, t) = old.map_or((0.0, 0.0), |c| (decay(c.wins, c.at_ms), decay(c.trials, c.at_ms)));
        entry.workers.insert(
            worker.to_string(),
            Counts { wins: w + f64::from(u8::from(won)), trials: t + 1.0, at_ms: now_ms },
        );
        if let Some(c) = old {
            self.by_age.remove(&(c.at_ms, tag.to_string(), worker.to_string()));
        }
        self.by_age.insert((now_ms, tag.to_string(), worker.to_string()));
        self.evict()
    }

    fn evict(&mut self) -> Vec<(String, String)> {
        let mut gone = Vec::new();
        while self.by_age.len() > self.max_records {
            let Some((_, tag, worker)) = self.by_age.pop_first() else { break };
            let half_life = self.half_life_ms as f64;
            if let Some(entry) = self.tags.get_mut(&tag) {
                if let Some(c) = entry.workers.remove(&worker) {
                    // Keep the total consistent with the records that remain.
                    let dt = entry.total_at_ms.saturating_sub(c.at_ms) as f64;
                    let gone = c.trials * 0.5f64.powf(dt / half_life);
                    entry.total = (entry.total - gone).max(0.0);
                }
                if entry.workers.is_empty() {
                    self.tags.remove(&tag);
                }
            }
            gone.push((worker, tag));
        }
        gone
    }

    /// (decayed wins, decayed trials) of `worker` for `tag` at `now_ms`.
    pub fn counts(&self, worker: &str, tag: &str, now_ms: u64) -> (f64, f64) {
        match self.tags.get(tag).and_then(|e| e.workers.get(worker)) {
            Some(c) => (self.decay(c.wins, c.at_ms, now_ms), self.decay(c.trials, c.at_ms, now_ms)),
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

    /// Decayed trials of every worker for `tag`. O(1).
    pub fn total_trials(&self, tag: &str, now_ms: u64) -> f64 {
        self.tags.get(tag).map_or(0.0, |e| self.decay(e.total, e.total_at_ms, now_ms))
    }

    /// The record of `worker` for `tag`, for persistence.
    pub fn get(&self, worker: &str, tag: &str) -> Option<Record> {
        let c = self.tags.get(tag)?.workers.get(worker)?;
        Some(Record {
            worker: worker.into(),
            tag: tag.into(),
            wins: c.wins,
            trials: c.trials,
            at_ms: c.at_ms,
        })
    }

    /// Every record, for persistence and inspection, ordered by (worker, tag).
    pub fn records(&self) -> Vec<Record> {
        let mut out: Vec<Record> =
            self.by_age.iter().filter_map(|(_, tag, worker)| self.get(worker, tag)).collect();
        out.sort_by(|a, b| (&a.worker, &a.tag).cmp(&(&b.worker, &b.tag)));
        out
    }

    /// Restores records saved by [`Self::records`]. Past the bound, the newest are kept.
    pub fn restore(&mut self, records: impl IntoIterator<Item = Record>) {
        for r in records {
            let entry = self.tags.entry(r.tag.clone()).or_default();
            let at = entry.total_at_ms.max(r.at_ms);
            let half_life = self.half_life_ms as f64;
            let d = |v: f64, from: u64| v * 0.5f64.powf(at.saturating_sub(from) as f64 / half_life);
            let mut total = d(entry.total, entry.total_at_ms) + d(r.trials, r.at_ms);
            if let Some(old) = entry.workers.get(&r.worker).copied() {
                total -= d(old.trials, old.at_ms);
                self.by_age.remove(&(old.at_ms, r.tag.clone(), r.worker.clone()));
            }
            entry.total = total.max(0.0);
            entry.total_at_ms = at;
            entry.workers.insert(
                r.worker.clone(),
                Counts { wins: r.wins, trials: r.trials, at_ms: r.at_ms },
            );
            self.by_age.insert((r.at_ms, r.tag, r.worker));
        }
        self.evict();
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
    fn totals_match_a_walk_over_every_record() {
        let mut r = WinRates::new(HOUR, 0.5);
        for i in 0..50u64 {
            r.record(&format!("w{}", i % 7), "t", i % 3 == 0, i * 60_000);
        }
        let now = 50 * 60_000;
        let walked: f64 = r
            .records()
            .iter()
            .filter(|rec| rec.tag == "t")
            .map(|rec| rec.trials * 0.5f64.powf((now - rec.at_ms) as f64 / HOUR as f64))
            .sum();
        assert!((r.total_trials("t", now) - walked).abs() < 1e-9, "{walked}");
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_least_recently_updated() {
        let mut r = WinRates::new(HOUR, 0.5).with_max_records(100);
        r.record("keep", "hot", true, 0);
        let mut evicted = 0;
        for i in 0..10_000u64 {
            evicted += r.record("w", &format!("tag{i}"), false, 1 + i).len();
            if i % 50 == 0 {
                r.record("keep", "hot", true, 1 + i);
            }
        }
        assert_eq!(r.len(), 100);
        assert_eq!(evicted, 10_001 - 100);
        assert!(r.counts("keep", "hot", 10_000).1 > 0.0, "the recently used record stays");
        assert_eq!(r.counts("w", "tag0", 10_000), (0.0, 0.0), "the oldest is gone");
        let total: f64 = r.records().iter().filter(|x| x.tag == "tag0").map(|x| x.trials).sum();
        assert_eq!(total, 0.0);
        assert_eq!(r.total_trials("tag0", 10_000), 0.0);
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
