//! Choosing which workers get a request.

use crate::{ClusterView, WinRates, WorkerView};

/// The outcome of selection.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Chosen worker ids, best first.
    pub workers: Vec<String>,
    /// How many workers were eligible.
    pub eligible: usize,
}

/// Picks up to `fanout` eligible workers for `model`.
///
/// Without tags, workers are ranked by the speed a new request can expect
/// ([`WorkerView::expected_speed`]: measured per-stream speed at the load it would join, and
/// the wait for a free sequence), so a slow or loaded device is used only when faster ones are
/// taken. With tags,
/// the mean exploration-adjusted win rate over the tags ranks first and speed breaks ties.
/// `seed` only breaks exact ties, so equal workers share the load across requests.
/// Returns an empty selection when nothing is eligible; the caller answers 503.
pub fn select(
    view: &ClusterView,
    model: Option<&str>,
    fanout: usize,
    tags: &[String],
    rates: &WinRates,
    seed: u64,
) -> Selection {
    let eligible = view.eligible(model);
    let totals: Vec<f64> = tags.iter().map(|t| rates.total_trials(t, view.now_ms)).collect();
    let mut scored: Vec<(f64, f64, u64, &WorkerView)> = eligible
        .iter()
        .map(|w| {
            let tag_score = if tags.is_empty() {
                0.0
            } else {
                tags.iter()
                    .zip(&totals)
                    .map(|(t, total)| rates.score(&w.id, t, *total, view.now_ms))
                    .sum::<f64>()
                    / tags.len() as f64
            };
            let speed = w.expected_speed();
            (tag_score, speed, tie_break(seed, &w.id), *w)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(&b.2)));
    Selection {
        eligible: eligible.len(),
        workers: scored.into_iter().take(fanout.max(1)).map(|s| s.3.id.clone()).collect(),
    }
}

/// FNV-1a of the seed and id: a stable, cheap pseudo-random order for ties.
fn tie_break(seed: u64, id: &str) -> u64 {
    let mut h = 0xcbf29ce484222325u64 ^ seed;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest, Strategy as _};

    use super::*;

    fn worker(id: &str, tps: f64) -> WorkerView {
        WorkerView {
            id: id.into(),
            name: id.into(),
            models: vec!["m".into()],
            tokens_per_s: tps,
            queue_depth: 0,
            queue_capacity: 4,
            paused: false,
            last_seen_ms: 1000,
            slots: 1,
            stream_speeds: Vec::new(),
        }
    }

    fn view(workers: Vec<WorkerView>) -> ClusterView {
        ClusterView { workers, now_ms: 1000, stale_after_ms: 30_000 }
    }

    #[test]
    fn prefers_fast_idle_workers() {
        let mut busy = worker("fast-busy", 100.0);
        busy.queue_depth = 3;
        let v = view(vec![worker("slow", 10.0), worker("fast", 100.0), busy]);
        let s = select(&v, Some("m"), 2, &[], &WinRates::new(1000, 0.0), 0);
        assert_eq!(s.workers, ["fast", "fast-busy"]);
        assert_eq!(s.eligible, 3);
    }

    #[test]
    fn a_free_sequence_counts_at_its_measured_speed() {
        // 4 sequences, 2 running; a third stream measured at 40 tok/s each.
        let mut batching = worker("batching", 60.0);
        (batching.slots, batching.queue_depth) = (4, 2);
        batching.stream_speeds = vec![60.0, 50.0, 40.0, 30.0];
        assert_eq!(batching.free_slots(), 2);
        assert_eq!(batching.expected_speed(), 40.0);
        // A one-at-a-time worker of 50 tok/s with one running: the request would wait a turn.
        let mut single = worker("single", 50.0);
        single.queue_depth = 1;
        assert_eq!(single.expected_speed(), 25.0);
        let v = view(vec![single.clone(), batching.clone()]);
        let s = select(&v, Some("m"), 1, &[], &WinRates::new(1000, 0.0), 0);
        assert_eq!(s.workers, ["batching"]);
        // Full, 7 waiting: the new request waits two batch turns behind them.
        batching.queue_depth = 11;
        assert_eq!(batching.expected_speed(), 30.0 / 3.0);
        // Unmeasured loads count as no gain from batching.
        batching.stream_speeds.clear();
        batching.queue_depth = 1;
        assert_eq!(batching.expected_speed(), 30.0);
    }

    #[test]
    fn nothing_eligible_is_an_empty_selection() {
        let mut p = worker("p", 10.0);
        p.paused = true;
        let s = select(&view(vec![p]), Some("m"), 2, &[], &WinRates::new(1000, 0.0), 0);
        assert!(s.workers.is_empty() && s.eligible == 0);
    }

    #[test]
    fn tag_winners_get_the_work_but_newcomers_are_explored() {
        let mut rates = WinRates::new(3_600_000, 0.6);
        let tags = vec!["math".to_string()];
        for _ in 0..10 {
            rates.record("winner", "math", true, 1000);
            rates.record("loser", "math", false, 1000);
        }
        // The slower historical winner beats the faster loser for this topic.
        let v = view(vec![worker("loser", 100.0), worker("winner", 20.0)]);
        assert_eq!(select(&v, Some("m"), 1, &tags, &rates, 0).workers, ["winner"]);
        // A newcomer with no history outranks the proven loser, so it gets tried.
        let v = view(vec![worker("loser", 100.0), worker("winner", 20.0), worker("new", 5.0)]);
        let s = select(&v, Some("m"), 2, &tags, &rates, 0);
        assert!(s.workers.contains(&"new".to_string()), "{s:?}");
        assert!(!s.workers.contains(&"loser".to_string()), "{s:?}");
    }

    #[test]
    fn ties_are_spread_across_seeds() {
        let v = view((0..4).map(|i| worker(&format!("w{i}"), 50.0)).collect());
        let firsts: std::collections::HashSet<String> = (0..64)
            .map(|seed| {
                select(&v, None, 1, &[], &WinRates::new(1000, 0.0), seed).workers[0].clone()
            })
            .collect();
        assert!(firsts.len() >= 3, "{firsts:?}");
    }

    fn arb_worker() -> impl proptest::strategy::Strategy<Value = WorkerView> {
        (0u8..1, 0.0f64..200.0, 0u32..6, 1u32..6, any::<bool>(), 0u64..100_000, any::<bool>())
            .prop_map(|(i, tps, depth, cap, paused, seen, has_model)| WorkerView {
                id: format!("w{i}"),
                name: String::new(),
                models: if has_model { vec!["m".into()] } else { vec!["other".into()] },
                tokens_per_s: tps,
                queue_depth: depth,
                queue_capacity: cap,
                paused,
                last_seen_ms: seen,
                slots: 1,
                stream_speeds: Vec::new(),
            })
    }

    proptest! {
        #[test]
        fn never_selects_stale_paused_busy_or_wrong_model(
            workers in proptest::collection::vec(arb_worker(), 0..12).prop_map(|ws| {
                ws.into_iter().enumerate().map(|(i, mut w)| { w.id = format!("w{i}"); w }).collect::<Vec<_>>()
            }),
            fanout in 1usize..6,
            seed in any::<u64>(),
        ) {
            let v = ClusterView { workers, now_ms: 100_000, stale_after_ms: 30_000 };
            let s = select(&v, Some("m"), fanout, &["t".into()], &WinRates::new(1000, 0.5), seed);
            prop_assert!(s.workers.len() <= fanout);
            prop_assert_eq!(s.workers.len(), fanout.min(s.eligible));
            for id in &s.workers {
                let w = v.workers.iter().find(|w| &w.id == id).unwrap();
                prop_assert!(v.check(w, Some("m")).is_ok());
            }
        }
    }
}
