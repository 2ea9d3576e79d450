//! One worker's attempt at a whole answer.

use std::time::Instant;

use nova_api::{Attempt, InferError};
use nova_engine::EngineError;
use nova_proto::{ErrorKind, FinishReason, TokenEvent, Usage};

use super::dispatch::Started;

/// Retries after "busy" refusals (full queue, paused guard) per job. They cost the worker
/// nothing, so they do not use the retry budget, but a flapping worker cannot loop forever.
pub(crate) const MAX_BUSY_RETRIES: usize = 8;

/// A complete answer from one worker.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) worker: String,
    pub(crate) text: String,
    pub(crate) finish: FinishReason,
    pub(crate) usage: Usage,
    pub(crate) ttft_ms: Option<f64>,
    pub(crate) latency_ms: f64,
}

/// A failed attempt.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) worker: String,
    pub(crate) kind: &'static str,
    pub(crate) wire: ErrorKind,
    pub(crate) message: String,
    pub(crate) ttft_ms: Option<f64>,
    pub(crate) latency_ms: f64,
    pub(crate) tokens: u32,
}

impl Failure {
    pub(crate) fn attempt(&self) -> Attempt {
        Attempt {
            worker: self.worker.clone(),
            outcome: self.kind.into(),
            latency_ms: self.latency_ms,
            ttft_ms: self.ttft_ms,
            tokens: self.tokens,
            ..Attempt::default()
        }
    }

    /// The client's error when the request itself is at fault (no retry can help).
    pub(crate) fn rejection(&self) -> Option<InferError> {
        self.wire.is_client_error().then(|| rejected(self.wire, &self.message))
    }
}

/// The 4xx error for a client error `kind` a worker reported.
pub(crate) fn rejected(kind: ErrorKind, message: &str) -> InferError {
    InferError::Rejected { code: kind.as_str(), message: message.to_string() }
}

/// Why a stream ended without an answer: an engine error, or `None` for a disconnect.
pub(crate) fn failure_kind(e: Option<&EngineError>) -> (&'static str, ErrorKind, String) {
    match e {
        Some(e) => (e.kind(), e.wire_kind(), e.to_string()),
        None => ("disconnected", ErrorKind::Unavailable, "the worker went away mid-answer".into()),
    }
}

pub(crate) fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Reads `started`'s stream to completion. Cancel-safe: dropping the future drops the stream,
/// which cancels the generation on the worker.
pub(crate) async fn whole(started: Started, t0: Instant) -> Result<Answer, Failure> {
    let Started { worker, mut stream } = started;
    let id = worker.id().to_string();
    let mut text = String::new();
    let mut ttft_ms = None;
    let mut tokens = 0;
    let err = loop {
        match stream.recv().await {
            Some(Ok(TokenEvent::Token { text: t })) => {
                ttft_ms.get_or_insert_with(|| ms(t0));
                tokens += 1;
                text.push_str(&t);
            }
            Some(Ok(TokenEvent::Done { finish_reason, usage })) => {
                return Ok(Answer {
                    worker: id,
                    text,
                    finish: finish_reason,
                    usage,
                    ttft_ms,
                    latency_ms: ms(t0),
                });
            }
            Some(Err(e)) => break Some(e),
            None => break None,
        }
    };
    let (kind, wire, message) = failure_kind(err.as_ref());
    Err(Failure { worker: id, kind, wire, message, ttft_ms, latency_ms: ms(t0), tokens })
}

impl Answer {
    /// Its trace entry.
    pub(crate) fn attempt(&self, outcome: &str) -> Attempt {
        Attempt {
            worker: self.worker.clone(),
            outcome: outcome.into(),
            latency_ms: self.latency_ms,
            ttft_ms: self.ttft_ms,
            tokens: self.usage.completion_tokens,
            ..Attempt::default()
        }
    }
}
