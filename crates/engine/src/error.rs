//! Engine errors.

use std::path::PathBuf;

use nova_proto::ErrorKind;

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
    /// The node is paused by its device guard (battery or heat). Nothing was started.
    #[error("this worker is paused by its device guard ({0})")]
    Paused(String),
    /// This engine cannot do this kind of work at all (embeddings on a backend that has
    /// none). Nothing was started; another engine may do it.
    #[error("{0}")]
    Unsupported(String),
    /// The request itself is at fault (it breaks this node's limits, or a peer reported a
    /// client error such as a prompt too long for its context). Nothing was started, and no
    /// other node would do better.
    #[error("{message}")]
    Rejected {
        /// [`ErrorKind::PromptTooLong`] or [`ErrorKind::InvalidRequest`].
        kind: ErrorKind,
        /// What is wrong, in words.
        message: String,
    },
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
            Self::Paused(_) => "paused",
            Self::Unsupported(_) => "unsupported",
            Self::Rejected { kind, .. } => kind.as_str(),
        }
    }

    /// The kind sent over the wire, which decides retries at the gateway.
    pub fn wire_kind(&self) -> ErrorKind {
        match self {
            Self::QueueFull { .. } => ErrorKind::QueueFull,
            Self::Shutdown => ErrorKind::Shutdown,
            Self::Load { .. } => ErrorKind::Load,
            Self::PromptTooLong { .. } => ErrorKind::PromptTooLong,
            Self::Template(_) => ErrorKind::InvalidRequest,
            Self::Rejected { kind, .. } => *kind,
            Self::Decode(_) => ErrorKind::Decode,
            Self::Upstream { .. } => ErrorKind::Upstream,
            Self::Unavailable(_) => ErrorKind::Unavailable,
            Self::Paused(_) => ErrorKind::Paused,
            Self::Unsupported(_) => ErrorKind::Unsupported,
        }
    }

    /// Rebuilds an error a peer reported as `kind` and `message`. The message is the peer's own
    /// rendering, kept as is; only the kind drives decisions.
    pub fn from_wire(kind: ErrorKind, message: String) -> Self {
        match kind {
            ErrorKind::QueueFull => Self::QueueFull { capacity: 0 },
            ErrorKind::Paused => Self::Paused(message),
            ErrorKind::PromptTooLong | ErrorKind::InvalidRequest => {
                Self::Rejected { kind, message }
            }
            ErrorKind::Decode => Self::Decode(message),
            ErrorKind::Unsupported => Self::Unsupported(message),
            ErrorKind::Shutdown | ErrorKind::Load | ErrorKind::Unavailable => {
                Self::Unavailable(message)
            }
            _ => Self::Upstream { status: None, message },
        }
    }
}
