//! Types shared by every part of nova-swarm: what a generation request is once validated, what
//! an engine streams back, and the identifiers that name tasks. No I/O and no async runtime, so
//! the engine, the router and (later) the wire protocol can all depend on it.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod calendar;
pub mod embed;
mod error;
mod format;
pub mod knowledge;
mod node;
mod request;
mod strategy;
mod swarm;
mod tags;
mod token;

pub use embed::{EmbedInputError, EmbedRequest, Embeddings};
pub use error::ErrorKind;
pub use format::{ResponseFormat, MAX_SCHEMA_BYTES};
pub use node::{NodeStatus, Slots, MAX_POOL_OFFER_MB, MAX_SLOTS};
pub use request::{
    ChatMessage, Limits, Passage, Prompt, Resume, Role, SamplingParams, TaskId, ValidRequest,
    ValidationError,
};
pub use strategy::Strategy;
pub use swarm::{
    PoolHolder, PoolView, ShardTraffic, SwarmView, SwarmWorker, WorkerState, WorkerSummary,
};
pub use tags::{deserialize_tags, normalize_tags, MAX_TAGS_READ, TOO_MANY_TAGS};
pub use token::{FinishReason, TokenEvent, Usage};
