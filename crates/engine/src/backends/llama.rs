//! llama.cpp embedded through `llama-cpp-2`.
//!
//! Topology: one dedicated OS thread owns the model and its context (llama.cpp contexts are not
//! shareable across threads) and serves a bounded job queue one request at a time. The async
//! side only ever does `try_send` on that queue, so a full engine answers at once with
//! [`EngineError::QueueFull`] instead of piling up work.

mod bench;
mod generate;

use std::{
    num::NonZeroU32,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc as std_mpsc, Arc, OnceLock,
    },
    thread,
};

pub use bench::{BenchReport, BenchSpec, BenchTest};
use llama_cpp_2::{
    context::params::LlamaContextParams,
    llama_backend::LlamaBackend,
    model::{params::LlamaModelParams, LlamaModel},
};
use nova_proto::ValidRequest;
use tokio::sync::{mpsc, oneshot};

use crate::{Engine, EngineError, EngineInfo, Health, TokenStream};

/// Settings of an embedded llama.cpp engine.
#[derive(Debug, Clone)]
pub struct LlamaConfig {
    /// The GGUF file.
    pub model_path: PathBuf,
    /// The name the model is known by (catalog name or file stem).
    pub model_name: String,
    /// Threads for generation and prompt processing; `None` uses every available core.
    pub threads: Option<u32>,
    /// Context window in tokens; capped at the model's training context.
    pub n_ctx: u32,
    /// Most prompt tokens evaluated in one llama.cpp call.
    pub n_batch: u32,
    /// Requests that may wait behind the running one.
    pub queue_capacity: usize,
}

impl LlamaConfig {
    /// Defaults for `model_path`: all cores, 2048-token context, batch 512, queue of 8.
    pub fn new(model_path: impl Into<PathBuf>, model_name: impl Into<String>) -> Self {
        Self {
            model_path: model_path.into(),
            model_name: model_name.into(),
            threads: None,
            n_ctx: 2048,
            n_batch: 512,
            queue_capacity: 8,
        }
    }

    /// Sets the thread count.
    pub fn with_threads(mut self, threads: Option<u32>) -> Self {
        self.threads = threads;
        self
    }

    /// Sets the context window.
    pub fn with_n_ctx(mut self, n_ctx: u32) -> Self {
        self.n_ctx = n_ctx;
        self
    }

    /// Sets the queue capacity.
    pub fn with_queue_capacity(mut self, cap: usize) -> Self {
        self.queue_capacity = cap;
        self
    }
}

enum Job {
    Generate { req: ValidRequest, tx: mpsc::Sender<Result<nova_proto::TokenEvent, EngineError>> },
    Bench { spec: BenchSpec, reply: oneshot::Sender<Result<BenchReport, EngineError>> },
}

/// Shared between the handle and the engine thread.
#[derive(Debug, Default)]
struct Shared {
    in_flight: AtomicUsize,
    busy: AtomicBool,
    alive: AtomicBool,
    /// Set when the handle is dropped, so a running generation ends promptly.
    shutdown: AtomicBool,
}

/// An embedded llama.cpp engine. Dropping it stops the engine thread after the running request.
pub struct LlamaEngine {
    info: EngineInfo,
    jobs: Option<std_mpsc::SyncSender<Job>>,
    shared: Arc<Shared>,
    thread: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for LlamaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlamaEngine").field("info", &self.info).finish_non_exhaustive()
    }
}

fn backend() -> &'static LlamaBackend {
    static BACKEND: OnceLock<LlamaBackend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
        // The only failure is a second initialisation, which the OnceLock rules out.
        LlamaBackend::init().expect("llama backend initialised twice; this is a bug")
    })
}

impl LlamaEngine {
    /// Loads the model on a new engine thread and waits until it is ready. Blocking: call it
    /// from `spawn_blocking` or before starting async work.
    pub fn load(config: LlamaConfig) -> Result<Self, EngineError> {
        let load_err =
            |reason: String| EngineError::Load { path: config.model_path.clone(), reason };
        if !config.model_path.is_file() {
            return Err(load_err("no such file".into()));
        }
        let (ready_tx, ready_rx) = std_mpsc::sync_channel(1);
        let (jobs_tx, jobs_rx) = std_mpsc::sync_channel(config.queue_capacity.max(1));
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        let thread_config = config.clone();
        let thread = thread::Builder::new()
            .name("nova-llama".into())
            .spawn(move || engine_thread(thread_config, ready_tx, jobs_rx, thread_shared))
            .map_err(|e| load_err(format!("cannot start the engine thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(info)) => Ok(Self { info, jobs: Some(jobs_tx), shared, thread: Some(thread) }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(load_err("the engine thread died while loading".into()))
            }
        }
    }

    /// Runs llama-bench-style measurements on the engine thread (queued like any request).
    /// Cancel-safe: dropping the future lets the benchmark finish unobserved.
    pub async fn bench(&self, spec: BenchSpec) -> Result<BenchReport, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.enqueue(Job::Bench { spec, reply })?;
        rx.await.map_err(|_| EngineError::Shutdown)?
    }

    fn enqueue(&self, job: Job) -> Result<(), EngineError> {
        let jobs = self.jobs.as_ref().ok_or(EngineError::Shutdown)?;
        // Count before sending so the engine thread's decrement can never run first.
        self.shared.in_flight.fetch_add(1, Ordering::SeqCst);
        jobs.try_send(job).map_err(|e| {
            self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            match e {
                std_mpsc::TrySendError::Full(_) => {
                    EngineError::QueueFull { capacity: self.info.queue_capacity }
                }
                std_mpsc::TrySendError::Disconnected(_) => EngineError::Shutdown,
            }
        })
    }
}

impl Engine for LlamaEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn submit(&self, req: ValidRequest) -> Result<TokenStream, EngineError> {
        // Small buffer: the engine blocks when the consumer lags, which is the backpressure
        // we want, and notices a dropped consumer on its next send.
        let (tx, rx) = mpsc::channel(32);
        self.enqueue(Job::Generate { req, tx })?;
        Ok(rx)
    }

    fn health(&self) -> Health {
        Health {
            in_flight: self.shared.in_flight.load(Ordering::SeqCst),
            busy: self.shared.busy.load(Ordering::SeqCst),
            alive: self.shared.alive.load(Ordering::SeqCst),
        }
    }
}

impl Drop for LlamaEngine {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn engine_thread(
    config: LlamaConfig,
    ready: std_mpsc::SyncSender<Result<EngineInfo, EngineError>>,
    jobs: std_mpsc::Receiver<Job>,
    shared: Arc<Shared>,
) {
    let load_err = |reason: String| EngineError::Load { path: config.model_path.clone(), reason };
    let backend = backend();
    let model =
        match LlamaModel::load_from_file(backend, &config.model_path, &LlamaModelParams::default())
        {
            Ok(m) => m,
            Err(e) => {
                let _ = ready.send(Err(load_err(format!(
                "llama.cpp rejected the file ({e}); it is corrupt, truncated or not a GGUF model"
            ))));
                return;
            }
        };
    let threads = config
        .threads
        .unwrap_or_else(|| thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1));
    let n_ctx = config.n_ctx.clamp(64, model.n_ctx_train().max(64));
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(config.n_batch)
        .with_n_ubatch(config.n_batch)
        .with_n_threads(threads as i32)
        .with_n_threads_batch(threads as i32);
    let mut ctx = match model.new_context(backend, params) {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(load_err(format!("cannot create a llama.cpp context: {e}"))));
            return;
        }
    };
    let info = EngineInfo {
        backend: "llama",
        model: config.model_name.clone(),
        architecture: model.meta_val_str("general.architecture").ok(),
        n_ctx: Some(ctx.n_ctx()),
        threads: Some(threads),
        queue_capacity: config.queue_capacity.max(1),
    };
    tracing::info!(model = %info.model, n_ctx = ctx.n_ctx(), threads, "llama engine ready");
    shared.alive.store(true, Ordering::SeqCst);
    if ready.send(Ok(info)).is_err() {
        return;
    }
    let gen = generate::Generator { model: &model, n_batch: config.n_batch, shared: &shared };
    while let Ok(job) = jobs.recv() {
        shared.busy.store(true, Ordering::SeqCst);
        match job {
            Job::Generate { req, tx } => gen.run(&mut ctx, req, &tx),
            Job::Bench { spec, reply } => {
                let _ = reply.send(bench::run(backend, &model, config.n_batch, threads, &spec));
            }
        }
        shared.busy.store(false, Ordering::SeqCst);
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    shared.alive.store(false, Ordering::SeqCst);
}
