//! OpenAI-compatible endpoints.

pub(crate) mod chat;
pub(crate) mod choices;
pub(crate) mod completions;
pub(crate) mod embeddings;
pub(crate) mod models;
