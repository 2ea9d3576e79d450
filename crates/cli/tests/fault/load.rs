//! The load: OpenAI chat requests, whole or streamed, each classified by what the client saw.
//!
//! A request *completes* (a whole answer, or a stream with exactly one finish chunk and one
//! `[DONE]`), ends with a *clean error* (an error status with an OpenAI-shaped body, an error
//! event as the stream's last event, or a refused connection: the client knows it was not
//! served), *hangs* (no end within the client timeout, slightly above the gateway's deadline),
//! or is *lost*: cut off without a terminal event, an error without a body, or a stream with
//! two terminal events (it completed twice).

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures_util::StreamExt as _;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::cluster::TOKEN;

/// The gateway's deadline for chat requests (api `DEADLINE`) plus a margin: a request still
/// open after this is hung.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(125);

const PROMPTS: [&str; 10] = [
    "Write a long story about a dragon.",
    "Describe the ocean in detail.",
    "Explain how bread is made.",
    "Tell me about the history of trains.",
    "Write a poem about autumn leaves.",
    "Describe a busy city market.",
    "Explain why the sky is blue.",
    "Write a letter to a friend about a trip.",
    "Describe how a bicycle works.",
    "Tell a story about a lost cat.",
];

/// What the client saw.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// A whole answer, or a stream with one finish chunk and `[DONE]`. `failed_attempts`: how
    /// many workers failed it on the way (from nova's trace).
    Completed { text: String, failed_attempts: usize },
    /// `status` 0: the connection was refused; 200: an error event ended the stream.
    /// `retry_after`: the response carried a `Retry-After` header.
    CleanError { status: u16, code: String, retry_after: bool },
    /// No end within [`CLIENT_TIMEOUT`].
    Hung,
    /// Neither completed nor cleanly failed, or completed twice.
    Lost(String),
}

/// One request's outcome.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// Which prompt it used (same index, same prompt across runs).
    pub(crate) index: usize,
    pub(crate) outcome: Outcome,
    pub(crate) latency: Duration,
}

/// A kind of load against one gateway.
#[derive(Clone)]
pub(crate) struct Load {
    pub(crate) url: String,
    pub(crate) stream: bool,
    pub(crate) max_tokens: u32,
    /// Tokens streamed so far by every request of this load (fault triggers watch it).
    pub(crate) tokens: Arc<AtomicUsize>,
    client: reqwest::Client,
}

impl Load {
    pub(crate) fn new(url: &str, stream: bool, max_tokens: u32) -> Self {
        // No pooled connections: a restarted gateway must not look like a lost request.
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
        Self { url: url.into(), stream, max_tokens, tokens: Arc::default(), client }
    }

    /// The request body for prompt `index`: greedy, fixed length, one worker per request (so a
    /// killed worker's requests must be retried or continued, not saved by a racing twin).
    pub(crate) fn body(&self, index: usize) -> Value {
        json!({
            "messages": [{"role": "user", "content": PROMPTS[index % PROMPTS.len()]}],
            "temperature": 0,
            "max_tokens": self.max_tokens,
            "ignore_eos": true,
            "stream": self.stream,
            "nova": {"fanout": 1},
        })
    }

    /// Sends one request and classifies it.
    pub(crate) async fn one(&self, index: usize) -> Record {
        let started = Instant::now();
        let outcome = tokio::time::timeout(CLIENT_TIMEOUT, self.send(&self.body(index)))
            .await
            .unwrap_or(Outcome::Hung);
        Record { index, outcome, latency: started.elapsed() }
    }

    /// `n` requests at once, prompts `first..first + n`.
    pub(crate) async fn wave(&self, n: usize, first: usize) -> Vec<Record> {
        let mut set = JoinSet::new();
        for i in first..first + n {
            let load = self.clone();
            set.spawn(async move { load.one(i).await });
        }
        let mut out: Vec<Record> = set.join_all().await;
        out.sort_by_key(|r| r.index);
        out
    }

    /// Keeps `concurrency` requests in flight until `run_for` has passed (requests started
    /// before then run to their end), at most `max` requests in all.
    pub(crate) async fn sustained(
        &self,
        concurrency: usize,
        run_for: Duration,
        max: usize,
    ) -> Vec<Record> {
        let until = Instant::now() + run_for;
        let next = Arc::new(AtomicUsize::new(0));
        let mut set = JoinSet::new();
        for _ in 0..concurrency {
            let (load, next) = (self.clone(), next.clone());
            set.spawn(async move {
                let mut mine = Vec::new();
                while Instant::now() < until {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= max {
                        break;
                    }
                    let r = load.one(i).await;
                    // A refusal returns at once; back off as a client would, not spin.
                    if matches!(r.outcome, Outcome::CleanError { .. }) {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    mine.push(r);
                }
                mine
            });
        }
        let mut out: Vec<Record> = set.join_all().await.into_iter().flatten().collect();
        out.sort_by_key(|r| r.index);
        out
    }

    async fn send(&self, body: &Value) -> Outcome {
        let resp = match self
            .client
            .post(format!("{}/v1/chat/completions", self.url))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                return Outcome::CleanError {
                    status: 0,
                    code: "connection_refused".into(),
                    retry_after: false,
                }
            }
            Err(e) => return Outcome::Lost(format!("no response: {e}")),
        };
        let status = resp.status().as_u16();
        if status != 200 {
            let retry_after = resp.headers().contains_key(reqwest::header::RETRY_AFTER);
            return error_outcome(status, retry_after, &resp.bytes().await.unwrap_or_default());
        }
        if !self.stream {
            let v: Value = match resp.json().await {
                Ok(v) => v,
                Err(e) => return Outcome::Lost(format!("200 with a broken body: {e}")),
            };
            let choice = &v["choices"][0];
            return match (choice["message"]["content"].as_str(), choice["finish_reason"].as_str()) {
                (Some(text), Some(_)) => Outcome::Completed {
                    text: text.into(),
                    failed_attempts: failed_attempts(&v["nova"]),
                },
                _ => Outcome::Lost(format!("200 without an answer: {v}")),
            };
        }
        let mut sse = Sse::default();
        let mut body = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(b) => buf.extend_from_slice(&b),
                Err(e) => {
                    return Outcome::Lost(format!(
                        "the stream broke after {} tokens: {e}",
                        sse.tokens
                    ))
                }
            }
            while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                sse.line(String::from_utf8_lossy(&line).trim_end(), &self.tokens);
            }
        }
        sse.outcome()
    }
}

/// What a stream has shown so far.
#[derive(Default)]
struct Sse {
    text: String,
    tokens: usize,
    finishes: usize,
    done: usize,
    error: Option<String>,
    /// Events after the first terminal one.
    after_end: usize,
    failed_attempts: usize,
}

impl Sse {
    fn ended(&self) -> bool {
        self.done > 0 || self.error.is_some()
    }

    fn line(&mut self, line: &str, counter: &AtomicUsize) {
        let Some(data) = line.strip_prefix("data:").map(str::trim_start) else { return };
        if self.ended() {
            self.after_end += 1;
        }
        if data == "[DONE]" {
            self.done += 1;
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else { return };
        if v["error"].is_object() {
            let code = v["error"]["code"].as_str().unwrap_or("unknown");
            self.error.get_or_insert_with(|| code.to_string());
            return;
        }
        let choice = &v["choices"][0];
        if let Some(t) = choice["delta"]["content"].as_str().filter(|t| !t.is_empty()) {
            self.text.push_str(t);
            self.tokens += 1;
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if choice["finish_reason"].is_string() {
            self.finishes += 1;
            self.failed_attempts = failed_attempts(&v["nova"]);
        }
    }

    fn outcome(self) -> Outcome {
        if self.after_end > 0 || self.finishes > 1 || self.done > 1 {
            return Outcome::Lost(format!(
                "{} events after the end, {} finish chunks, {} [DONE]",
                self.after_end, self.finishes, self.done
            ));
        }
        match (self.done, self.error) {
            (_, Some(code)) => Outcome::CleanError { status: 200, code, retry_after: false },
            (1, None) if self.finishes == 1 => {
                Outcome::Completed { text: self.text, failed_attempts: self.failed_attempts }
            }
            _ => Outcome::Lost(format!(
                "the stream ended without a terminal event after {} tokens",
                self.tokens
            )),
        }
    }
}

/// Attempts in nova's trace that neither won nor were cancelled.
fn failed_attempts(trace: &Value) -> usize {
    trace["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| !matches!(a["outcome"].as_str(), Some("won" | "cancelled")))
        .count()
}

/// An error status: clean when the body says what went wrong in OpenAI's shape.
pub(crate) fn error_outcome(status: u16, retry_after: bool, body: &[u8]) -> Outcome {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match (v["error"]["message"].as_str(), v["error"]["code"].as_str()) {
        (Some(_), Some(code)) => Outcome::CleanError { status, code: code.into(), retry_after },
        _ => Outcome::Lost(format!(
            "{status} without an error body: {}",
            String::from_utf8_lossy(body)
        )),
    }
}

/// Counts over a run.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stats {
    pub(crate) sent: usize,
    pub(crate) completed: usize,
    pub(crate) clean_errors: usize,
    pub(crate) hung: usize,
    pub(crate) lost: usize,
    /// p99 latency of the completed requests, in ms.
    pub(crate) p99_ms: Option<f64>,
    /// `status code` -> count, for the clean errors.
    pub(crate) errors: BTreeMap<String, usize>,
    /// Why requests were lost (first few).
    pub(crate) lost_why: Vec<String>,
    /// Completed requests that some worker failed on the way (retried or continued elsewhere).
    pub(crate) rescued: usize,
}

impl Stats {
    pub(crate) fn of(records: &[Record]) -> Self {
        let mut s = Stats { sent: records.len(), ..Stats::default() };
        let mut lat: Vec<f64> = Vec::new();
        for r in records {
            match &r.outcome {
                Outcome::Completed { failed_attempts, .. } => {
                    s.completed += 1;
                    s.rescued += usize::from(*failed_attempts > 0);
                    lat.push(r.latency.as_secs_f64() * 1000.0);
                }
                Outcome::CleanError { status, code, .. } => {
                    s.clean_errors += 1;
                    *s.errors.entry(format!("{status} {code}")).or_default() += 1;
                }
                Outcome::Hung => s.hung += 1,
                Outcome::Lost(why) => {
                    s.lost += 1;
                    if s.lost_why.len() < 3 {
                        s.lost_why.push(why.clone());
                    }
                }
            }
        }
        s.p99_ms = p99(&mut lat);
        s
    }

    /// The clean errors as `status code ×n`, for notes.
    pub(crate) fn error_summary(&self) -> String {
        self.errors.iter().map(|(k, n)| format!("{k} ×{n}")).collect::<Vec<_>>().join(", ")
    }
}

/// Nearest-rank p99.
pub(crate) fn p99(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((v.len() as f64) * 0.99).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}
