//! The engine port and its backends.
//!
//! An [`Engine`] turns a [`ValidRequest`] into a stream of [`TokenEvent`]s, and an
//! [`EmbedRequest`] into one vector per input ([`Engine::embed`]). Backends:
//! - [`LlamaEngine`]: llama.cpp embedded through `llama-cpp-2`, on a dedicated thread with a
//!   bounded queue.
//! - [`OpenAiHttpEngine`]: forwards to any OpenAI-compatible server (llama.cpp's server, Ollama).
//! - [`ScriptedEngine`]: deterministic and instant, for tests of strategy and fault logic only.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod backends;
mod error;
mod output;

use std::fmt;

#[cfg(feature = "llama")]
pub use backends::llama::{BenchReport, BenchSpec, BenchTest, LlamaConfig, LlamaEngine};
pub use backends::{
    openai_http::{OpenAiHttpConfig, OpenAiHttpEngine},
    scripted::{Script, ScriptedEngine, SCRIPTED_EMBED_DIM},
};
pub use error::EngineError;
pub use nova_proto::{EmbedRequest, Embeddings, TokenEvent, ValidRequest};
pub use output::OutputFilter;
use tokio::sync::{mpsc, oneshot};

/// The receiving end of one generation. Dropping it cancels the generation.
pub type TokenStream = mpsc::Receiver<Result<TokenEvent, EngineError>>;

/// The receiving end of one embedding request. Dropping it cancels the request.
pub type EmbedReply = oneshot::Receiver<Result<Embeddings, EngineError>>;

/// What an engine runs and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    /// Backend name: `llama`, `openai_http` or `scripted`.
    pub backend: &'static str,
    /// The model's name as the swarm knows it.
    pub model: String,
    /// Model architecture from the GGUF header, when known.
    pub architecture: Option<String>,
    /// Context window in tokens, when known.
    pub n_ctx: Option<u32>,
    /// Width of the model's hidden state, which is the width of its embeddings, when known.
    pub n_embd: Option<u32>,
    /// Threads used for generation, when known.
    pub threads: Option<u32>,
    /// Requests generated at once (llama.cpp sequences decoded in one batch); 1 for an engine
    /// that serves one request at a time.
    pub slots: usize,
    /// Requests that may wait in the queue, besides the `slots` running.
    pub queue_capacity: usize,
    /// Memory held for the KV cache of all `slots`, allocated when the model loaded, when
    /// known.
    pub kv_cache_bytes: Option<u64>,
}

impl EngineInfo {
    /// Requests this engine accepts at once: the running ones plus the queue.
    pub fn capacity(&self) -> usize {
        self.slots.max(1) + self.queue_capacity
    }
}

/// A snapshot of an engine's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// Requests queued or running.
    pub in_flight: usize,
    /// Requests generating right now (at most [`EngineInfo::slots`]); the free slots are the
    /// difference.
    pub running: usize,
    /// Whether a generation is running right now.
    pub busy: bool,
    /// False once the engine has stopped and accepts nothing.
    pub alive: bool,
}

/// A local or remote language model that generates text.
pub trait Engine: Send + Sync + fmt::Debug + 'static {
    /// What this engine runs.
    fn info(&self) -> &EngineInfo;

    /// Queues `req` and returns its token stream. Never blocks: a full queue is
    /// [`EngineError::QueueFull`]. Dropping the receiver cancels generation.
    fn submit(&self, req: ValidRequest) -> Result<TokenStream, EngineError>;

    /// Current load.
    fn health(&self) -> Health;

    /// Queues `req` for embedding: one L2-normalised vector per input, all from this engine's
    /// model. Never blocks: a full queue is [`EngineError::QueueFull`]; an engine without
    /// embeddings says [`EngineError::Unsupported`]. Dropping the reply cancels the request.
    fn embed(&self, req: EmbedRequest) -> Result<EmbedReply, EngineError> {
        let _ = req;
        Err(EngineError::Unsupported(format!(
            "the {} backend does not compute embeddings",
            self.info().backend
        )))
    }

    /// Entry `k - 1`: tokens per second each stream gets while `k` generate at once, as
    /// measured on recent steps (0.0: not measured yet), for `k` up to [`EngineInfo::slots`].
    /// Empty when the engine does not measure it.
    fn stream_speeds(&self) -> Vec<f64> {
        Vec::new()
    }
}

/// Puts a request's context passages into its prompt by an estimate, for engines that cannot
/// count tokens here (an upstream server, the scripted engine): a token per 3 bytes, which
/// over-counts English for the BPE vocabularies of small models, so what fits by the estimate
/// fits in fact. The window is `n_ctx`, or 2,048 tokens when unknown. Returns how many
/// passages went in; the request's context is emptied.
pub fn ground_by_estimate(req: &mut nova_proto::ValidRequest, n_ctx: Option<u32>) -> u32 {
    if req.context.is_empty() {
        return 0;
    }
    let n_ctx = n_ctx.unwrap_or(2048) as usize;
    let (prompt, used) = req.fit_context(n_ctx, |p| Some(estimate_tokens(p)));
    req.prompt = prompt;
    req.context.clear();
    used as u32
}

/// A generous token count of `prompt`: a token per 3 bytes, plus a few per chat message for
/// the template's markers.
fn estimate_tokens(prompt: &nova_proto::Prompt) -> usize {
    let messages = match prompt {
        nova_proto::Prompt::Chat(m) => m.len(),
        nova_proto::Prompt::Text(_) => 0,
    };
    prompt.text_len().div_ceil(3) + 8 * messages
}

/// Collects a whole stream into its text and final event. Cancel-safe: dropping the future
/// drops the stream, which cancels the generation.
pub async fn collect(mut stream: TokenStream) -> Result<(String, TokenEvent), EngineError> {
    let mut text = String::new();
    while let Some(ev) = stream.recv().await {
        match ev? {
            TokenEvent::Token { text: t } => text.push_str(&t),
            done @ TokenEvent::Done { .. } => return Ok((text, done)),
        }
    }
    Err(EngineError::Shutdown)
}

/// Waits for an embedding request's vectors. Cancel-safe: dropping the future drops the
/// reply, which cancels the request.
pub async fn embeddings(reply: EmbedReply) -> Result<Embeddings, EngineError> {
    reply.await.map_err(|_| EngineError::Shutdown)?
}

/// Entry points for the fuzz targets under `fuzz/`; not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    use crate::{backends::openai_http::sse, EngineError, TokenEvent};

    /// Decodes `input` as an OpenAI-compatible server's event stream arriving in pieces of
    /// `piece` bytes, exactly as the `openai_http` backend does: the events it would send, and
    /// the error that would end the stream.
    pub fn decode_sse(input: &[u8], piece: usize) -> (Vec<TokenEvent>, Option<EngineError>) {
        let (events, err) = sse::decode_all(input, piece);
        let events = events
            .into_iter()
            .map(|e| match e {
                sse::Event::Token(text) => TokenEvent::Token { text },
                sse::Event::Done { finish_reason, usage } => {
                    TokenEvent::Done { finish_reason, usage }
                }
            })
            .collect();
        (events, err)
    }
}
