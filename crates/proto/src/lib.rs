//! Types shared by every part of nova-swarm: what a generation request is once validated, what
//! an engine streams back, and the identifiers that name tasks. No I/O and no async runtime, so
//! the engine, the router and (later) the wire protocol can all depend on it.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod calendar;
pub mod embed;
mod error;
pub mod knowledge;
mod node;
mod request;
mod strategy;
mod swarm;
mod token;

pub use embed::{EmbedInputError, EmbedRequest, Embeddings};
pub use error::ErrorKind;
pub use node::{NodeStatus, Slots, MAX_POOL_OFFER_MB, MAX_SLOTS};
pub use request::{
    deserialize_tags, normalize_tags, ChatMessage, Limits, Passage, Prompt, ResponseFormat, Resume,
    Role, SamplingParams, TaskId, ValidRequest, ValidationError, MAX_SCHEMA_BYTES, MAX_TAGS_READ,
    TOO_MANY_TAGS,
};
pub use strategy::Strategy;
pub use swarm::{
    PoolHolder, PoolView, ShardTraffic, SwarmView, SwarmWorker, WorkerState, WorkerSummary,
};
pub use token::{FinishReason, TokenEvent, Usage};
