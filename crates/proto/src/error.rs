//! Error kinds that cross the wire: a worker tells the gateway why a task failed, and the
//! gateway decides from the kind alone whether another worker could do better.

use serde::{Deserialize, Serialize};

/// Why a generation failed, as one node tells another. Serialized as a snake_case string, so
/// it reads the same in logs, metrics and API bodies; a kind this version does not know
/// decodes as [`ErrorKind::Other`] instead of failing the whole frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The worker's queue was full. Nothing was started.
    QueueFull,
    /// The worker's device guard paused it (battery or heat). Nothing was started.
    Paused,
    /// The prompt does not fit the worker's context window. Nothing was generated.
    PromptTooLong,
    /// The request breaks the worker's own limits, or its template cannot render it.
    InvalidRequest,
    /// The engine failed while evaluating; tokens already sent are valid.
    Decode,
    /// An upstream server (the HTTP backend) answered with an error.
    Upstream,
    /// The worker, or its upstream, could not be reached or stopped answering.
    Unavailable,
    /// The worker's engine has stopped.
    Shutdown,
    /// The model could not be loaded.
    Load,
    /// The worker cannot do this kind of work at all (embeddings on a backend without them);
    /// another worker may.
    Unsupported,
    /// A kind from a newer version, or none given.
    #[serde(other)]
    Other,
}

impl ErrorKind {
    /// The stable name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::Paused => "paused",
            Self::PromptTooLong => "prompt_too_long",
            Self::InvalidRequest => "invalid_request",
            Self::Decode => "decode",
            Self::Upstream => "upstream",
            Self::Unavailable => "unavailable",
            Self::Shutdown => "shutdown",
            Self::Load => "load",
            Self::Unsupported => "unsupported",
            Self::Other => "other",
        }
    }

    /// Whether the request itself is at fault: every worker would refuse it the same way, so
    /// it must not be retried and the client gets a 4xx.
    pub fn is_client_error(self) -> bool {
        matches!(self, Self::PromptTooLong | Self::InvalidRequest)
    }

    /// Whether the worker only had no room: another worker (or the same one a moment later)
    /// may take it, and trying elsewhere does not use up the retry budget.
    pub fn is_busy(self) -> bool {
        matches!(self, Self::QueueFull | Self::Paused)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_roundtrip_and_unknown_ones_decode_as_other() -> Result<(), serde_json::Error> {
        for k in [ErrorKind::QueueFull, ErrorKind::Paused, ErrorKind::PromptTooLong] {
            let s = serde_json::to_string(&k)?;
            assert_eq!(s, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<ErrorKind>(&s)?, k);
        }
        assert_eq!(serde_json::from_str::<ErrorKind>("\"melted\"")?, ErrorKind::Other);
        Ok(())
    }

    #[test]
    fn client_errors_are_never_busy() {
        for k in [ErrorKind::PromptTooLong, ErrorKind::InvalidRequest] {
            assert!(k.is_client_error() && !k.is_busy());
        }
        assert!(ErrorKind::Paused.is_busy() && !ErrorKind::Decode.is_client_error());
    }
}
