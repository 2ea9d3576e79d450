//! Engine backends.

#[cfg(feature = "llama")]
pub(crate) mod llama;
pub(crate) mod openai_http;
pub(crate) mod scripted;
