//! Engine errors.

use std::path::PathBuf;

/// Why an engine could not start or finish a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The queue is full. Nothing was started; the caller may retry later or elsewhere.
    #[error("the engine's queue is full ({capacity} requests waiting); retry later")]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
    /// The engine has stopped. Nothing more will be generated.
    #[error("the engine has shut down")]
    Shutdown,
    /// The model could not be loaded. The engine never started.
    #[error("cannot load model {}: {reason}", path.display())]
    Load {
        /// The model file.
        path: PathBuf,
        /// What went wrong, in words.
        reason: String,
    },
    /// The prompt does not fit the context window. Nothing was generated.
    #[error("the prompt is {tokens} tokens; this engine's context window is {n_ctx} tokens")]
    PromptTooLong {
        /// Prompt tokens after templating.
        tokens: usize,
        /// The context window.
        n_ctx: u32,
    },
    /// The chat template could not be applied. Nothing was generated.
    #[error("cannot apply the chat template: {0}")]
    Template(String),
    /// llama.cpp failed while evaluating. Tokens already streamed are valid.
    #[error("llama.cpp failed to decode: {0}")]
    Decode(String),
    /// The upstream server answered with an error. Tokens already streamed are valid.
    #[error("upstream server error{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Upstream {
        /// HTTP status, when there was one.
        status: Option<u16>,
        /// What it said, shortened.
        message: String,
    },
    /// The upstream server could not be reached or stopped answering.
    #[error("upstream server unreachable: {0}")]
    Unavailable(String),
}

impl EngineError {
    /// A stable name for metrics and API error bodies.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::QueueFull { .. } => "queue_full",
            Self::Shutdown => "shutdown",
            Self::Load { .. } => "load",
            Self::PromptTooLong { .. } => "prompt_too_long",
            Self::Template(_) => "template",
            Self::Decode(_) => "decode",
            Self::Upstream { .. } => "upstream",
            Self::Unavailable(_) => "unavailable",
        }
    }
}
