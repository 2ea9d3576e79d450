//! The gateway's metrics, rendered in Prometheus text format. Hand-rolled because a handful of
//! counters and histograms do not justify a metrics framework.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    sync::Mutex,
};

use nova_proto::{SwarmView, WorkerState};

/// Distinct workers the per-worker series keep; attempts of any further worker are counted
/// under `worker="other"`, so a churning swarm cannot grow the page without bound.
const MAX_WORKER_SERIES: usize = 512;

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
    /// By (worker id, outcome).
    attempts: BTreeMap<(String, String), u64>,
    /// Tokens each worker generated in the attempts of answered requests, losers' included.
    worker_tokens: BTreeMap<String, u64>,
    latency: BTreeMap<String, Histogram>,
    ttft: BTreeMap<String, Histogram>,
    tokens: u64,
    prompt_tokens: u64,
    /// Workers with series of their own.
    workers: BTreeSet<String>,
}

impl State {
    /// The series key for `worker`: itself while there is room, else `other`.
    fn worker_key(&mut self, worker: &str) -> String {
        if self.workers.contains(worker) {
            return worker.to_owned();
        }
        if self.workers.len() < MAX_WORKER_SERIES {
            self.workers.insert(worker.to_owned());
            return worker.to_owned();
        }
        "other".to_owned()
    }
}

/// A Prometheus label value: backslash, double quote and newline escaped, as the text format
/// wants (worker names come from the workers themselves).
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
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

    /// A finished request; `workers` are the tokens each attempt of it generated.
    pub(crate) fn request(&self, r: RequestRecord<'_>) {
        self.with(|s| {
            *s.requests.entry((r.strategy.into(), r.outcome.into())).or_default() += 1;
            s.latency.entry(r.strategy.into()).or_default().observe(r.latency_s);
            if let Some(t) = r.ttft_s {
                s.ttft.entry(r.strategy.into()).or_default().observe(t);
            }
            s.tokens += u64::from(r.tokens);
            s.prompt_tokens += u64::from(r.prompt_tokens);
            for (worker, tokens) in r.workers {
                let key = s.worker_key(worker);
                *s.worker_tokens.entry(key).or_default() += u64::from(*tokens);
            }
        });
    }

    pub(crate) fn attempt(&self, worker: &str, outcome: &str) {
        self.with(|s| {
            let key = s.worker_key(worker);
            *s.attempts.entry((key, outcome.into())).or_default() += 1;
        });
    }

    pub(crate) fn render(&self, view: &SwarmView) -> String {
        let mut out = String::new();
        self.with(|s| {
            out.push_str("# HELP nova_requests_total Requests finished, by strategy and outcome.\n# TYPE nova_requests_total counter\n");
            for ((strategy, outcome), n) in &s.requests {
                let _ = writeln!(out, "nova_requests_total{{strategy=\"{strategy}\",outcome=\"{outcome}\"}} {n}");
            }
            out.push_str("# HELP nova_attempts_total Worker attempts, by worker id and outcome.\n# TYPE nova_attempts_total counter\n");
            for ((worker, outcome), n) in &s.attempts {
                let _ = writeln!(out, "nova_attempts_total{{worker=\"{}\",outcome=\"{outcome}\"}} {n}", label(worker));
            }
            out.push_str("# HELP nova_worker_tokens_total Tokens each worker generated for answered requests (losing and cancelled attempts included).\n# TYPE nova_worker_tokens_total counter\n");
            for (worker, n) in &s.worker_tokens {
                let _ = writeln!(out, "nova_worker_tokens_total{{worker=\"{}\"}} {n}", label(worker));
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
            out.push_str("# HELP nova_prompt_tokens_total Prompt tokens of answered requests.\n# TYPE nova_prompt_tokens_total counter\n");
            let _ = writeln!(out, "nova_prompt_tokens_total {}", s.prompt_tokens);
        });
        // The states and their names are those of /v1/swarm.
        let states = [
            WorkerState::Ready,
            WorkerState::Busy,
            WorkerState::Paused,
            WorkerState::Stale,
            WorkerState::Gone,
        ];
        out.push_str("# HELP nova_workers Workers by state, as /v1/swarm names them.\n# TYPE nova_workers gauge\n");
        for state in states {
            let n = view.workers.iter().filter(|w| w.state == state).count();
            let _ = writeln!(out, "nova_workers{{state=\"{}\"}} {n}", state.as_str());
        }
        out.push_str("# HELP nova_worker_info Each worker's name and state (value 1), to join with the per-worker series by id.\n# TYPE nova_worker_info gauge\n");
        for w in &view.workers {
            let _ = writeln!(
                out,
                "nova_worker_info{{worker=\"{}\",name=\"{}\",state=\"{}\"}} 1",
                label(&w.worker.id),
                label(&w.worker.name),
                w.state.as_str()
            );
        }
        out
    }
}

/// What [`Metrics::request`] records of a finished request.
pub(crate) struct RequestRecord<'a> {
    pub(crate) strategy: &'a str,
    pub(crate) outcome: &'a str,
    pub(crate) latency_s: f64,
    pub(crate) ttft_s: Option<f64>,
    /// Completion tokens of the answer.
    pub(crate) tokens: u32,
    pub(crate) prompt_tokens: u32,
    /// Tokens each attempt generated, by worker id.
    pub(crate) workers: &'a [(&'a str, u32)],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_worker_names_cannot_break_the_page_and_series_are_bounded() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let m = Metrics::default();
        for i in 0..MAX_WORKER_SERIES + 50 {
            m.attempt(&format!("w{i}"), "won");
        }
        m.attempt("w0", "lost");
        let page = m.render(&SwarmView::default());
        let series = page.lines().filter(|l| l.starts_with("nova_attempts_total{")).count();
        assert_eq!(series, MAX_WORKER_SERIES + 2, "{MAX_WORKER_SERIES} workers, other, w0 lost");
        assert!(
            page.contains("nova_attempts_total{worker=\"other\",outcome=\"won\"} 50"),
            "{page}"
        );
        assert!(page.contains("nova_attempts_total{worker=\"w0\",outcome=\"lost\"} 1"));
    }
}
