//! A deterministic engine for tests of strategy, timing and fault logic. It never pretends to
//! be a model: its answers are scripted, word by word, at a fixed pace.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use nova_proto::{FinishReason, Prompt, TokenEvent, Usage, ValidRequest};
use tokio::sync::mpsc;

use crate::{Engine, EngineError, EngineInfo, Health, OutputFilter, TokenStream};

/// What a [`ScriptedEngine`] answers.
#[derive(Debug, Clone)]
pub enum Script {
    /// Repeats the last message (or the raw prompt).
    Echo,
    /// Always answers this text.
    Fixed(String),
    /// Fails every request with this error, after streaming nothing.
    Fail(EngineError),
}

/// A deterministic engine that streams its script one word per `token_delay`.
#[derive(Debug)]
pub struct ScriptedEngine {
    info: EngineInfo,
    script: Script,
    token_delay: Duration,
    in_flight: Arc<AtomicUsize>,
}

impl ScriptedEngine {
    /// An engine named `model` that answers by `script`, one word per `token_delay`.
    pub fn new(model: impl Into<String>, script: Script, token_delay: Duration) -> Self {
        Self {
            info: EngineInfo {
                backend: "scripted",
                model: model.into(),
                architecture: None,
                n_ctx: None,
                threads: None,
                queue_capacity: 64,
            },
            script,
            token_delay,
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Engine for ScriptedEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn submit(&self, req: ValidRequest) -> Result<TokenStream, EngineError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            EngineError::Unavailable("the scripted engine needs a tokio runtime".into())
        })?;
        if self.in_flight.load(Ordering::SeqCst) >= self.info.queue_capacity {
            return Err(EngineError::QueueFull { capacity: self.info.queue_capacity });
        }
        let text = match &self.script {
            Script::Echo => match &req.prompt {
                Prompt::Text(t) => t.clone(),
                Prompt::Chat(m) => m.last().map(|m| m.content.clone()).unwrap_or_default(),
            },
            Script::Fixed(t) => t.clone(),
            Script::Fail(e) => {
                let (tx, rx) = mpsc::channel(1);
                let _ = tx.try_send(Err(e.clone()));
                return Ok(rx);
            }
        };
        let (tx, rx) = mpsc::channel(32);
        let delay = self.token_delay;
        let in_flight = self.in_flight.clone();
        in_flight.fetch_add(1, Ordering::SeqCst);
        handle.spawn(async move {
            stream_words(&text, &req, delay, &tx).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
        });
        Ok(rx)
    }

    fn health(&self) -> Health {
        let n = self.in_flight.load(Ordering::SeqCst);
        Health { in_flight: n, busy: n > 0, alive: true }
    }
}

async fn stream_words(
    text: &str,
    req: &ValidRequest,
    delay: Duration,
    tx: &mpsc::Sender<Result<TokenEvent, EngineError>>,
) {
    let mut filter = OutputFilter::new(&req.params.stop);
    let mut generated = 0;
    let mut finish = FinishReason::Stop;
    for word in text.split_inclusive(' ') {
        if generated >= req.params.max_tokens {
            finish = FinishReason::Length;
            break;
        }
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        generated += 1;
        let out = filter.push(word.as_bytes());
        if !out.is_empty() && tx.send(Ok(TokenEvent::Token { text: out })).await.is_err() {
            return;
        }
        if filter.stopped() {
            break;
        }
    }
    let rest = filter.finish();
    if !rest.is_empty() && tx.send(Ok(TokenEvent::Token { text: rest })).await.is_err() {
        return;
    }
    let usage = Usage {
        prompt_tokens: req.prompt.text_len().div_ceil(4) as u32,
        completion_tokens: generated,
        prompt_ms: 0.0,
        generation_ms: delay.as_secs_f64() * 1000.0 * f64::from(generated),
    };
    let _ = tx.send(Ok(TokenEvent::Done { finish_reason: finish, usage })).await;
}

#[cfg(test)]
mod tests {
    use nova_proto::{ChatMessage, Limits, SamplingParams, TaskId};

    use super::*;
    use crate::collect;

    fn req(text: &str, params: SamplingParams) -> ValidRequest {
        let prompt = Prompt::Chat(vec![ChatMessage::user(text)]);
        ValidRequest::new(TaskId(7), prompt, params, &Limits::default()).unwrap()
    }

    #[tokio::test]
    async fn echoes_word_by_word_and_honours_limits() -> Result<(), EngineError> {
        let e = ScriptedEngine::new("s", Script::Echo, Duration::from_millis(1));
        let (text, done) = collect(e.submit(req("a b c d", SamplingParams::default()))?).await?;
        assert_eq!(text, "a b c d");
        assert!(matches!(done, TokenEvent::Done { finish_reason: FinishReason::Stop, .. }));
        let params = SamplingParams { max_tokens: 2, ..Default::default() };
        let (text, done) = collect(e.submit(req("a b c d", params))?).await?;
        assert_eq!(text, "a b ");
        assert!(matches!(done, TokenEvent::Done { finish_reason: FinishReason::Length, .. }));
        Ok(())
    }

    #[tokio::test]
    async fn dropping_the_stream_frees_the_engine() -> Result<(), EngineError> {
        let e =
            ScriptedEngine::new("s", Script::Fixed("x ".repeat(1000)), Duration::from_millis(5));
        let mut rx =
            e.submit(req("hi", SamplingParams { max_tokens: 1000, ..Default::default() }))?;
        rx.recv().await;
        assert_eq!(e.health().in_flight, 1);
        drop(rx);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(e.health().in_flight, 0);
        Ok(())
    }
}
