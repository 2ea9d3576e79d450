//! What the API asks of the swarm for `/v1/embeddings`, and what it gets back.

use std::time::Duration;

use nova_proto::{EmbedRequest, Embeddings};

use crate::Attempt;

/// An embedding request as the swarm sees it. All its inputs go to one worker, so they are
/// embedded by one model.
#[derive(Debug, Clone)]
pub struct EmbedJob {
    /// The validated inputs.
    pub request: EmbedRequest,
    /// Model asked for; `None` means any.
    pub model: Option<String>,
    /// The whole request must finish within this.
    pub deadline: Duration,
}

/// The vectors of an [`EmbedJob`] and who computed them.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedResult {
    /// The vectors, L2-normalised, and the model that computed them.
    pub embeddings: Embeddings,
    /// The name of the worker that computed them.
    pub worker: String,
    /// Every worker asked, in order; the last one answered.
    pub attempts: Vec<Attempt>,
    /// Total time.
    pub latency_ms: f64,
}
