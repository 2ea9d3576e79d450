//! The port this crate needs from the node: something that runs jobs on the swarm.

mod embed;

use std::time::Duration;

use futures_util::future::BoxFuture;
use nova_proto::Strategy;
use nova_proto::{FinishReason, Usage, ValidRequest};
use serde::Serialize;
use tokio::sync::mpsc;

pub use self::embed::{EmbedJob, EmbedResult};

/// A request as the swarm sees it.
#[derive(Debug, Clone)]
pub struct Job {
    /// The validated prompt and sampling parameters.
    pub request: ValidRequest,
    /// Model asked for; `None` means any.
    pub model: Option<String>,
    /// How answers are combined.
    pub strategy: Strategy,
    /// Workers asked at once.
    pub fanout: usize,
    /// Topic tags for tag routing.
    pub tags: Vec<String>,
    /// Include every candidate and its score in the trace.
    pub debug: bool,
    /// Stream tokens as they come (race commits to the first worker to produce one) rather
    /// than waiting for a complete answer (race takes the first complete one).
    pub stream: bool,
    /// The whole job must finish within this.
    pub deadline: Duration,
    /// Answer from the documents nodes share: retrieve passages first and put them in the
    /// prompt, and list the ones used as the answer's `sources`.
    pub rag: bool,
}

/// One worker's part in a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Attempt {
    /// The worker.
    pub worker: String,
    /// `won`, `lost`, `cancelled` or an error kind.
    pub outcome: String,
    /// Time until it finished or was stopped.
    pub latency_ms: f64,
    /// Time to its first token, if it produced one.
    pub ttft_ms: Option<f64>,
    /// Tokens it generated.
    pub tokens: u32,
    /// Reranker score (best_of_n).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Its answer (ensembles with `debug`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Its part in a council: the anonymous label of its answer (`A`, `B`, ...), `ranker` or
    /// `chairman`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The normalised claim of its answer (vote).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
}

/// A stream that moved to another worker when its worker failed mid-answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Handover {
    /// The worker that failed.
    pub from: String,
    /// The worker that continued the answer.
    pub to: String,
    /// Text events the client had received when it moved.
    pub after_tokens: u32,
    /// When it moved, in ms since the job started.
    pub at_ms: f64,
    /// Why the first worker stopped (an error kind).
    pub reason: String,
}

/// One stage of a multi-stage strategy (a council's answers, rankings and synthesis).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stage {
    /// `answer`, `rank` or `synthesize`.
    pub name: String,
    /// Time from the job's start to the stage's end.
    pub at_ms: f64,
    /// How long the stage took.
    pub latency_ms: f64,
    /// Every worker asked in this stage.
    pub attempts: Vec<Attempt>,
    /// What the stage decided or why it was skipped, in words.
    pub note: String,
    /// Borda scores by answer label (the rank stage).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scores: Vec<(String, f64)>,
}

/// How much an ensemble's answers agreed (vote and best_of_n).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VoteSummary {
    /// The largest cluster's claim (vote returns one of its answers; best_of_n may not).
    pub claim: String,
    /// Share of answers in the largest cluster, 0..=1.
    pub agreement: f64,
    /// Distinct claims among the answers.
    pub distinct: usize,
    /// Answers voted on.
    pub answers: usize,
}

/// Who answered and how fast.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Trace {
    /// The strategy used.
    pub strategy: Strategy,
    /// The worker whose answer was returned.
    pub winner: Option<String>,
    /// Every worker asked, in the order they were asked (retries last).
    pub attempts: Vec<Attempt>,
    /// Total time.
    pub latency_ms: f64,
    /// Time to the first token returned to the client.
    pub ttft_ms: Option<f64>,
    /// Streams continued on another worker after theirs failed, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub handovers: Vec<Handover>,
    /// The stages of a council, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
    /// The vote (vote, and best_of_n's agreement).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vote: Option<VoteSummary>,
    /// Why `auto` chose this strategy (absent when the client chose).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto: Option<String>,
    /// The retrieval that grounded the answer (requests with `rag`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<Retrieval>,
}

/// How the passages of a grounded answer were found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Retrieval {
    /// Time from asking the first node to merging the answers.
    pub latency_ms: f64,
    /// Nodes asked (those that share documents, the gateway's own index included).
    pub asked: usize,
    /// Nodes that answered within the deadline.
    pub answered: usize,
    /// Nodes that did not, with why: `name: reason`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    /// Passages retrieved (before the model's context window chose how many to use).
    pub hits: usize,
}

/// A passage a grounded answer was given, numbered as the prompt numbered it (`[n]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source {
    /// Its number in the prompt, from 1.
    pub n: usize,
    /// The node that holds the document.
    pub node: String,
    /// The document, as `<shared directory>/<path inside it>`.
    pub path: String,
    /// Which chunk of the document.
    pub chunk: u32,
    /// Its BM25 score across the nodes that answered.
    pub score: f64,
    /// The passage.
    pub text: String,
}

/// The final answer of a job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobResult {
    /// The whole answer.
    pub text: String,
    /// Why it stopped.
    pub finish_reason: FinishReason,
    /// The winner's token counts.
    pub usage: Usage,
    /// Who answered.
    pub trace: Trace,
    /// The passages the answer was given (requests with `rag`), in prompt order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
}

/// What a running job reports. A job ends with exactly one `Done` or `Error`.
#[derive(Debug, Clone)]
pub enum JobEvent {
    /// Text for the client (streamed jobs; whole jobs send the answer in `Done`).
    Token(String),
    /// A stage of a multi-stage strategy (council) started, by name; streamed jobs forward it.
    StageStarted(&'static str),
    /// A stage of a multi-stage strategy ended; streamed jobs forward it.
    Stage(Box<Stage>),
    /// Finished.
    Done(Box<JobResult>),
    /// Failed; tokens already sent stay valid but the answer is incomplete.
    Error(InferError),
}

/// The events of a running job, in order. Dropping it cancels the job on every worker.
#[derive(Debug)]
pub struct JobEvents {
    first: Option<JobEvent>,
    rx: mpsc::Receiver<JobEvent>,
}

impl JobEvents {
    /// The events arriving on `rx`.
    pub fn new(rx: mpsc::Receiver<JobEvent>) -> Self {
        Self { first: None, rx }
    }

    /// `first`, already received, followed by the rest of `rx`.
    pub fn with_first(first: JobEvent, rx: mpsc::Receiver<JobEvent>) -> Self {
        Self { first: Some(first), rx }
    }

    /// The next event; `None` once the job has gone away. Cancel-safe.
    pub async fn recv(&mut self) -> Option<JobEvent> {
        match self.first.take() {
            Some(ev) => Some(ev),
            None => self.rx.recv().await,
        }
    }
}

/// Why the swarm could not answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InferError {
    /// Admission is full. Nothing was started; retry after `retry_after_s`.
    #[error("the gateway is at capacity; retry in {retry_after_s} s")]
    Overloaded {
        /// Suggested wait.
        retry_after_s: u64,
    },
    /// No worker in the swarm serves this model.
    #[error("model {model:?} is not served by any node; available: {available}")]
    UnknownModel {
        /// The model asked for.
        model: String,
        /// Models that are served, comma-separated.
        available: String,
    },
    /// No worker can take work now, and waiting would not help soon: none has joined, or
    /// every one is stale or paused.
    #[error("no worker can take this request now ({detail}); retry in {retry_after_s} s")]
    NoCapacity {
        /// Why, in words.
        detail: String,
        /// Suggested wait.
        retry_after_s: u64,
    },
    /// The request itself is at fault, as a worker found (e.g. the prompt does not fit its
    /// context window). Not retried: every worker would refuse it.
    #[error("{message}")]
    Rejected {
        /// Stable code (`prompt_too_long`, `invalid_request`).
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The deadline passed.
    #[error("no answer within {seconds} s")]
    Timeout {
        /// The deadline.
        seconds: u64,
    },
    /// Every attempt failed, or the streaming worker failed midway.
    #[error("{message}")]
    Failed {
        /// What happened, including the last worker error.
        message: String,
    },
    /// The gateway is shutting down.
    #[error("the gateway is shutting down")]
    Shutdown,
}

impl InferError {
    /// A stable name for metrics and API error bodies.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Overloaded { .. } => "overloaded",
            Self::UnknownModel { .. } => "model_not_found",
            Self::NoCapacity { .. } => "no_capacity",
            Self::Rejected { code, .. } => code,
            Self::Timeout { .. } => "timeout",
            Self::Failed { .. } => "worker_failed",
            Self::Shutdown => "shutdown",
        }
    }
}

/// The swarm as the API needs it.
pub trait Inference: Send + Sync + 'static {
    /// Admits and starts `job`. Resolves once workers have taken it, and for a streamed job
    /// once its first event is known, so a caller can still answer with an error status (a
    /// 429, or a 400 for a prompt no worker can take) before it commits to a response. While
    /// every worker is busy the job waits in a bounded FIFO queue, for a bounded time; past
    /// either bound it is `Overloaded`. An impossible job is refused at once. Everything after
    /// that is reported on the returned events; dropping them cancels the job on every worker.
    /// Cancel-safe: dropping the future leaves the queue and cancels what it started.
    fn run(&self, job: Job) -> BoxFuture<'_, Result<JobEvents, InferError>>;

    /// Every model some live worker serves.
    fn models(&self) -> Vec<String>;

    /// The live cluster view: every worker, its state and what it last reported.
    fn swarm(&self) -> nova_proto::SwarmView;

    /// Metrics in Prometheus text format.
    fn metrics(&self) -> String;

    /// Embeds `job`'s inputs on one worker that serves its model, admitted and queued like
    /// [`Inference::run`]'s jobs. Cancel-safe: dropping the future cancels the work. The default
    /// has no workers to ask.
    fn embed(&self, job: EmbedJob) -> BoxFuture<'_, Result<EmbedResult, InferError>> {
        let _ = job;
        Box::pin(async {
            Err(InferError::Failed { message: "this gateway does not compute embeddings".into() })
        })
    }
}
