//! Routing decisions, as plain functions over plain data so they can be tested exhaustively:
//! which workers may take a request ([`ClusterView::eligible`]), which of them get it
//! ([`select`]), how a topic's past winners are remembered ([`WinRates`]) and how candidate
//! answers are ranked ([`Reranker`]), and how one model's layers are split across devices
//! ([`split::plan`]). No async, no I/O; the node crate does the dispatching.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod borda;
mod cluster;
mod rerank;
mod select;
pub mod split;
pub mod vote;
pub mod winrate;

pub use cluster::{ClusterView, Ineligible, WorkerView};
pub use nova_proto::Strategy;
pub use rerank::{Candidate, Reranker, RuleReranker};
pub use select::{select, Selection};
pub use winrate::WinRates;
