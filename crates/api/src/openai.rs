//! OpenAI-compatible endpoints.

pub(crate) mod chat;
pub(crate) mod models;
