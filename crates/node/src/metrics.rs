//! The gateway's metrics, rendered in Prometheus text format. Hand-rolled because a handful of
//! counters and histograms do not justify a metrics framework.

use std::{collections::BTreeMap, fmt::Write as _, sync::Mutex};

use nova_router::ClusterView;

/// Histogram bucket bounds in seconds.
const BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    n: u64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.n += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in BUCKETS.iter().enumerate() {
            let c = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.n);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.n);
    }
}

#[derive(Debug, Default)]
struct State {
    requests: BTreeMap<(String, String), u64>,
    attempts: BTreeMap<String, u64>,
    latency: BTreeMap<String, Histogram>,
    ttft: BTreeMap<String, Histogram>,
    tokens: u64,
}

/// The gateway's counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    state: Mutex<State>,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // A poisoned lock only means another thread panicked mid-update; counters stay usable.
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    pub(crate) fn request(
        &self,
        strategy: &str,
        outcome: &str,
        latency_s: f64,
        ttft_s: Option<f64>,
        tokens: u32,
    ) {
        self.with(|s| {
            *s.requests.entry((strategy.into(), outcome.into())).or_default() += 1;
            s.latency.entry(strategy.into()).or_default().observe(latency_s);
            if let Some(t) = ttft_s {
                s.ttft.entry(strategy.into()).or_default().observe(t);
            }
            s.tokens += u64::from(tokens);
        });
    }

    pub(crate) fn attempt(&self, outcome: &str) {
        self.with(|s| *s.attempts.entry(outcome.into()).or_default() += 1);
    }

    pub(crate) fn render(&self, view: &ClusterView) -> String {
        let mut out = String::new();
        self.with(|s| {
            out.push_str("# HELP nova_requests_total Requests finished, by strategy and outcome.\n# TYPE nova_requests_total counter\n");
            for ((strategy, outcome), n) in &s.requests {
                let _ = writeln!(out, "nova_requests_total{{strategy=\"{strategy}\",outcome=\"{outcome}\"}} {n}");
            }
            out.push_str("# HELP nova_attempts_total Worker attempts, by outcome.\n# TYPE nova_attempts_total counter\n");
            for (outcome, n) in &s.attempts {
                let _ = writeln!(out, "nova_attempts_total{{outcome=\"{outcome}\"}} {n}");
            }
            out.push_str("# HELP nova_request_duration_seconds Time to the whole answer.\n# TYPE nova_request_duration_seconds histogram\n");
            for (strategy, h) in &s.latency {
                h.render(&mut out, "nova_request_duration_seconds", &format!("strategy=\"{strategy}\""));
            }
            out.push_str("# HELP nova_time_to_first_token_seconds Time to the first token sent to the client.\n# TYPE nova_time_to_first_token_seconds histogram\n");
            for (strategy, h) in &s.ttft {
                h.render(&mut out, "nova_time_to_first_token_seconds", &format!("strategy=\"{strategy}\""));
            }
            out.push_str("# HELP nova_tokens_generated_total Tokens in answers returned.\n# TYPE nova_tokens_generated_total counter\n");
            let _ = writeln!(out, "nova_tokens_generated_total {}", s.tokens);
        });
        let (mut online, mut paused, mut stale) = (0, 0, 0);
        for w in &view.workers {
            if view.now_ms.saturating_sub(w.last_seen_ms) > view.stale_after_ms {
                stale += 1;
            } else if w.paused {
                paused += 1;
            } else {
                online += 1;
            }
        }
        out.push_str("# HELP nova_workers Workers by state.\n# TYPE nova_workers gauge\n");
        let _ = writeln!(out, "nova_workers{{state=\"online\"}} {online}");
        let _ = writeln!(out, "nova_workers{{state=\"paused\"}} {paused}");
        let _ = writeln!(out, "nova_workers{{state=\"stale\"}} {stale}");
        out
    }
}
