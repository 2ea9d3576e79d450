//! What an engine streams back for one request.

use serde::{Deserialize, Serialize};

/// One event of a generation stream. A well-formed stream is zero or more `Token`s followed by
/// exactly one `Done`; an error ends the stream instead of `Done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TokenEvent {
    /// A piece of generated text. Always valid UTF-8: bytes of a multi-byte character that a
    /// token split are held back until the character is complete.
    Token {
        /// The text of this piece.
        text: String,
    },
    /// Generation finished.
    Done {
        /// Why it finished.
        finish_reason: FinishReason,
        /// Token counts and timings of the whole request.
        usage: Usage,
    },
}

/// Why a generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model produced an end-of-generation token or a stop string matched.
    Stop,
    /// `max_tokens` was reached.
    Length,
    /// The context window is full.
    ContextFull,
}

impl FinishReason {
    /// The OpenAI `finish_reason` string for this reason.
    pub fn as_openai(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length | Self::ContextFull => "length",
        }
    }
}

/// Token counts and timings of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt after the chat template was applied.
    pub prompt_tokens: u32,
    /// Tokens generated (including a final end-of-generation token, which is not printed).
    pub completion_tokens: u32,
    /// Time spent evaluating the prompt, in milliseconds.
    pub prompt_ms: f64,
    /// Time spent generating, in milliseconds.
    pub generation_ms: f64,
    /// Passages of the request's context that fit in the prompt (the first this many).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub context_used: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Usage {
    /// Generated tokens per second, or 0 when nothing was timed.
    pub fn generation_tps(&self) -> f64 {
        if self.generation_ms > 0.0 {
            f64::from(self.completion_tokens) * 1000.0 / self.generation_ms
        } else {
            0.0
        }
    }
}
