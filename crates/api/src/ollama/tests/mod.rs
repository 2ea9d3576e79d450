//! The Ollama routes behind the real router, in front of a scripted swarm that records the jobs
//! it is handed: option mapping, NDJSON framing, errors and bounds. The official Python client
//! runs against a real gateway in the CLI's end-to-end tests.

mod bounds;
mod chat;
mod models;

use std::sync::{Arc, Mutex};

use axum::{
    body::Body,
    http::{HeaderMap, Request, StatusCode},
    Router,
};
use futures_util::future::BoxFuture;
use http_body_util::BodyExt as _;
use nova_proto::{
    FinishReason, Limits, Strategy, SwarmView, SwarmWorker, Usage, WorkerState, WorkerSummary,
};
use serde_json::Value;
use tokio::sync::mpsc;
use tower::ServiceExt as _;

use crate::{router, AppState, InferError, Inference, Job, JobEvent, JobEvents, JobResult, Trace};

pub(super) const TOKEN: &str = "t0ken";

/// What the scripted swarm serves. `busy` is always at capacity; `broken` fails mid-answer.
const MODELS: [&str; 4] = ["smollm2-135m", "my-finetune", "broken", "busy"];

/// A swarm that answers "Paris" (streamed as "Par" + "is" unless the strategy picks its
/// answer at the end), keeping every job it is handed.
#[derive(Default)]
pub(super) struct Scripted {
    jobs: Mutex<Vec<Job>>,
}

impl Scripted {
    pub(super) fn jobs(&self) -> Vec<Job> {
        self.jobs.lock().expect("lock").clone()
    }

    /// The one job run so far.
    pub(super) fn job(&self) -> Job {
        let jobs = self.jobs();
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        jobs.into_iter().next().expect("one job")
    }
}

fn result(job: &Job) -> JobResult {
    JobResult {
        text: "Paris".into(),
        finish_reason: FinishReason::Stop,
        usage: Usage {
            prompt_tokens: 7,
            completion_tokens: 2,
            prompt_ms: 3.0,
            generation_ms: 20.0,
            ..Usage::default()
        },
        trace: Trace {
            strategy: job.strategy,
            winner: Some("phone".into()),
            latency_ms: 25.5,
            ..Trace::default()
        },
        sources: Vec::new(),
    }
}

impl Inference for Scripted {
    fn run(&self, job: Job) -> BoxFuture<'_, Result<JobEvents, InferError>> {
        self.jobs.lock().expect("lock").push(job.clone());
        Box::pin(async move {
            match job.model.as_deref() {
                Some("busy") => return Err(InferError::Overloaded { retry_after_s: 3 }),
                Some(m) if !MODELS.contains(&m) => {
                    let available = MODELS.join(", ");
                    return Err(InferError::UnknownModel { model: m.into(), available });
                }
                _ => {}
            }
            let (tx, rx) = mpsc::channel(8);
            let mut events = Vec::new();
            if job.stream && job.strategy != Strategy::BestOfN {
                events.extend(["Par", "is"].map(|t| JobEvent::Token(t.into())));
            }
            events.push(if job.model.as_deref() == Some("broken") {
                JobEvent::Error(InferError::Failed { message: "the worker went away".into() })
            } else {
                JobEvent::Done(Box::new(result(&job)))
            });
            for ev in events {
                tx.try_send(ev).expect("room");
            }
            Ok(JobEvents::new(rx))
        })
    }

    fn models(&self) -> Vec<String> {
        MODELS.map(String::from).to_vec()
    }

    fn swarm(&self) -> SwarmView {
        let worker = |name: &str, models: &[&str], state| SwarmWorker {
            worker: WorkerSummary {
                id: format!("id-{name}"),
                name: name.into(),
                models: models.iter().map(|m| m.to_string()).collect(),
                tokens_per_s: 10.0,
                queue_depth: 0,
                queue_capacity: 2,
                paused: false,
                last_seen_ms: 1,
            },
            state,
            status: None,
            left_at_ms: None,
        };
        SwarmView {
            now_ms: 2,
            stale_after_ms: 30_000,
            forget_after_ms: None,
            models: vec!["my-finetune".into(), "smollm2-135m".into()],
            workers: vec![
                worker("phone", &["smollm2-135m"], WorkerState::Ready),
                worker("laptop", &["smollm2-135m", "my-finetune"], WorkerState::Busy),
                worker("old", &["smollm2-135m"], WorkerState::Gone),
            ],
            pools: vec![],
        }
    }

    fn metrics(&self) -> String {
        String::new()
    }
}

/// The router in front of a fresh scripted swarm.
pub(super) fn app() -> (Router, Arc<Scripted>) {
    let swarm = Arc::new(Scripted::default());
    let inference: Arc<dyn Inference> = swarm.clone();
    (router(AppState::new(inference, TOKEN, Limits::default())), swarm)
}

/// A response, read whole.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) text: String,
}

impl Answer {
    /// The body as one JSON object.
    pub(super) fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    /// An Ollama error's message, after checking the body is exactly `{"error": "..."}`.
    pub(super) fn error(&self) -> String {
        let v = self.json();
        let obj = v.as_object().unwrap_or_else(|| panic!("not an object: {v}"));
        assert_eq!(obj.len(), 1, "{v}");
        obj["error"].as_str().unwrap_or_else(|| panic!("no error string: {v}")).to_string()
    }

    /// The body as NDJSON: every line one JSON object, every line ended by a newline.
    pub(super) fn lines(&self) -> Vec<Value> {
        assert_eq!(self.headers["content-type"], "application/x-ndjson");
        assert!(self.text.ends_with('\n'), "{:?}", self.text);
        self.text
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                assert!(v.is_object(), "{l}");
                v
            })
            .collect()
    }
}

pub(super) async fn call(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req.body(body.map(Body::from).unwrap_or_else(Body::empty)).expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        text: String::from_utf8(bytes.to_vec()).expect("utf-8"),
    }
}

/// `POST path` with the token and a JSON body.
pub(super) async fn post(app: &Router, path: &str, body: &Value) -> Answer {
    call(app, "POST", path, Some(TOKEN), Some(body.to_string())).await
}

/// `GET path` with the token.
pub(super) async fn get(app: &Router, path: &str) -> Answer {
    call(app, "GET", path, Some(TOKEN), None).await
}
