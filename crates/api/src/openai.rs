//! OpenAI-compatible endpoints.

pub(crate) mod chat;
pub(crate) mod embeddings;
pub(crate) mod models;
