//! llama.cpp embedded through `llama-cpp-2`.
//!
//! Topology: one dedicated OS thread owns the model and its context (llama.cpp contexts are not
//! shareable across threads). The context holds `parallel` sequences; the thread admits queued
//! requests into free ones between steps and decodes every running sequence in one batch per
//! step (continuous batching, in [`schedule`]). The async side only ever does `try_send` on the
//! bounded job queue, so a full engine answers at once with [`EngineError::QueueFull`] instead
//! of piling up work.

mod bench;
mod embed;
mod grammar;
mod prepare;
mod schedule;
mod slot;

use std::{
    num::NonZeroU32,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        mpsc as std_mpsc, Arc, Mutex, OnceLock,
    },
    thread,
    time::Duration,
};

pub use bench::{BenchReport, BenchSpec, BenchTest};
use llama_cpp_2::{
    context::params::LlamaContextParams,
    llama_backend::LlamaBackend,
    model::{params::LlamaModelParams, LlamaModel},
};
use nova_proto::{EmbedRequest, ValidRequest};
use tokio::sync::{mpsc, oneshot};

use crate::{EmbedReply, Engine, EngineError, EngineInfo, Health, TokenStream};

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
    /// Requests that may wait behind the running ones.
    pub queue_capacity: usize,
    /// Sequences generated at once, each with a `n_ctx` window of its own; `None` picks a number
    /// from the free memory (up to 4; see `auto_parallel`).
    pub parallel: Option<u32>,
    /// Layers held by other devices over ggml-rpc, in order after this node's own layers; empty
    /// runs the whole model here. The routes to them must be added (`nova_rpc::add_route`)
    /// before the engine starts.
    pub shards: Vec<nova_rpc::Shard>,
    /// Tokens evaluated in one call when embedding; `None` picks as many as a fixed logits
    /// budget holds for the model's vocabulary (see `llama/embed.rs`). Results do not depend
    /// on it beyond float rounding.
    pub embed_chunk: Option<u32>,
}

impl LlamaConfig {
    /// Defaults for `model_path`: all cores, 2048-token context, batch 512, queue of 8, one
    /// sequence at a time.
    pub fn new(model_path: impl Into<PathBuf>, model_name: impl Into<String>) -> Self {
        Self {
            model_path: model_path.into(),
            model_name: model_name.into(),
            threads: None,
            n_ctx: 2048,
            n_batch: 512,
            queue_capacity: 8,
            parallel: Some(1),
            shards: Vec::new(),
            embed_chunk: None,
        }
    }

    /// Sets the tokens evaluated per call when embedding (see [`LlamaConfig::embed_chunk`]).
    pub fn with_embed_chunk(mut self, chunk: Option<u32>) -> Self {
        self.embed_chunk = chunk;
        self
    }

    /// Splits the model: `shards` hold layers after this node's own (see [`LlamaConfig::shards`]).
    pub fn with_shards(mut self, shards: Vec<nova_rpc::Shard>) -> Self {
        self.shards = shards;
        self
    }

    /// Sets how many sequences run at once; `None` picks from the free memory.
    pub fn with_parallel(mut self, parallel: Option<u32>) -> Self {
        self.parallel = parallel;
        self
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
    Embed { req: EmbedRequest, reply: embed::Reply },
}

/// Shared between the handle and the engine thread.
#[derive(Debug, Default)]
struct Shared {
    in_flight: AtomicUsize,
    running: AtomicUsize,
    /// Prompt tokens evaluated since load (not those copied from a shared prefix).
    prompt_evaluated: AtomicU64,
    busy: AtomicBool,
    alive: AtomicBool,
    /// Set when the handle is dropped, so a running generation ends promptly.
    shutdown: AtomicBool,
    /// Entry `k - 1`: tokens per second one stream gets while `k` generate, a moving average
    /// of the steps measured (0: none yet).
    speeds: Mutex<Vec<f64>>,
}

impl Shared {
    /// Weight of the newest step in the moving average: about the last 20 steps count.
    const SPEED_WEIGHT: f64 = 0.05;

    /// Records a step that advanced `k` streams by one token each in `took`.
    fn record_step(&self, k: usize, took: Duration) {
        let secs = took.as_secs_f64();
        if k == 0 || secs <= 0.0 {
            return;
        }
        let mut speeds = self.speeds.lock().unwrap_or_else(|p| p.into_inner());
        if speeds.len() < k {
            speeds.resize(k, 0.0);
        }
        let s = &mut speeds[k - 1];
        *s = if *s == 0.0 { 1.0 / secs } else { *s + Self::SPEED_WEIGHT * (1.0 / secs - *s) };
    }
}

/// An embedded llama.cpp engine. Dropping it stops the engine thread after the running request.
pub struct LlamaEngine {
    info: EngineInfo,
    /// Layers sit on other devices: no embeddings (see [`Engine::embed`]).
    split: bool,
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
        // Room for every slot and the queue, whatever number of slots the engine picks: the
        // admission limit is `in_flight`, checked in `enqueue`, so a burst is accepted up to
        // the advertised capacity however fast the engine thread takes jobs.
        let (jobs_tx, jobs_rx) =
            std_mpsc::sync_channel(MAX_PARALLEL as usize + config.queue_capacity.max(1));
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        let thread_config = config.clone();
        let thread = thread::Builder::new()
            .name("nova-llama".into())
            .spawn(move || engine_thread(thread_config, ready_tx, jobs_rx, thread_shared))
            .map_err(|e| load_err(format!("cannot start the engine thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(info)) => Ok(Self {
                info,
                split: !config.shards.is_empty(),
                jobs: Some(jobs_tx),
                shared,
                thread: Some(thread),
            }),
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

    /// Prompt tokens llama.cpp has evaluated since the model loaded. Samples of one prompt
    /// running at once evaluate its shared prefix once, so this grows by less than their
    /// prompts' total.
    pub fn prompt_tokens_evaluated(&self) -> u64 {
        self.shared.prompt_evaluated.load(Ordering::SeqCst)
    }

    fn enqueue(&self, job: Job) -> Result<(), EngineError> {
        let jobs = self.jobs.as_ref().ok_or(EngineError::Shutdown)?;
        let full = EngineError::QueueFull { capacity: self.info.queue_capacity };
        // Count before sending so the engine thread's decrement can never run first.
        if self.shared.in_flight.fetch_add(1, Ordering::SeqCst) >= self.info.capacity() {
            self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err(full);
        }
        jobs.try_send(job).map_err(|e| {
            self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            match e {
                std_mpsc::TrySendError::Full(_) => full,
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

    /// Queued like a generation; the engine thread evaluates it a chunk at a time between
    /// generation steps (see `llama/embed.rs`).
    fn embed(&self, req: EmbedRequest) -> Result<EmbedReply, EngineError> {
        if self.split {
            // The embedding context would need the shards too, over the network, for a
            // request the gateway can send to any whole model of the same name instead.
            return Err(EngineError::Unsupported(
                "a model split across devices does not compute embeddings".into(),
            ));
        }
        let (reply, rx) = oneshot::channel();
        self.enqueue(Job::Embed { req, reply })?;
        Ok(rx)
    }

    fn health(&self) -> Health {
        Health {
            in_flight: self.shared.in_flight.load(Ordering::SeqCst),
            running: self.shared.running.load(Ordering::SeqCst),
            busy: self.shared.busy.load(Ordering::SeqCst),
            alive: self.shared.alive.load(Ordering::SeqCst),
        }
    }

    fn stream_speeds(&self) -> Vec<f64> {
        let mut speeds = self.shared.speeds.lock().unwrap_or_else(|p| p.into_inner()).clone();
        speeds.resize(self.info.slots.max(1), 0.0);
        speeds
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

/// Loads the GGUF whole, or with `config.shards` holding the last layers over ggml-rpc.
fn load_model(backend: &LlamaBackend, config: &LlamaConfig) -> Result<LlamaModel, String> {
    let rejected = |e: llama_cpp_2::LlamaModelLoadError| {
        format!("llama.cpp rejected the file ({e}); it is corrupt, truncated or not a GGUF model")
    };
    if config.shards.is_empty() {
        // No devices named means the CPU alone, also while a split load in another thread has
        // its shards in ggml's global device list.
        let params = LlamaModelParams::default()
            .with_devices(&[])
            .map_err(|e| format!("llama.cpp refused the device list: {e}"))?;
        return LlamaModel::load_from_file(backend, &config.model_path, &params).map_err(rejected);
    }
    let offloaded: u32 = config.shards.iter().map(|s| s.layers).sum();
    nova_rpc::with_devices(&config.shards, |devices| {
        // Layer mode puts contiguous layers on each device in list order; the "+1" is the
        // output layer, which llama.cpp places on the last device.
        let mut params = Box::pin(
            LlamaModelParams::default()
                .with_devices(devices)
                .map_err(|e| format!("llama.cpp refused the shard devices: {e}"))?
                .with_split_mode(llama_cpp_2::model::params::LlamaSplitMode::Layer)
                .with_n_gpu_layers(offloaded + 1),
        );
        // The output projection stays here with the embeddings (the same tensor in tied models):
        // the last shard then returns one hidden state per token (2 KiB for SmolLM2) instead of
        // the logits (192 KiB; 1 MiB for Gemma 3's vocabulary).
        params.as_mut().add_cpu_buft_override(c"^(output|token_embd)\\.weight$");
        LlamaModel::load_from_file(backend, &config.model_path, &params).map_err(|e| {
            format!(
                "llama.cpp could not load the model split across its shards ({e}): the file \
                 may be damaged, or a shard refused a buffer past its --max-ram"
            )
        })
    })
    .map_err(|e| format!("the layer split could not start: {e}"))?
}

fn engine_thread(
    config: LlamaConfig,
    ready: std_mpsc::SyncSender<Result<EngineInfo, EngineError>>,
    jobs: std_mpsc::Receiver<Job>,
    shared: Arc<Shared>,
) {
    let load_err = |reason: String| EngineError::Load { path: config.model_path.clone(), reason };
    let backend = backend();
    let model = match load_model(backend, &config) {
        Ok(m) => m,
        Err(why) => {
            let _ = ready.send(Err(load_err(why)));
            return;
        }
    };
    let threads = config
        .threads
        .unwrap_or_else(|| thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1));
    let n_ctx_seq = config.n_ctx.clamp(64, model.n_ctx_train().max(64));
    // A split model keeps the KV cache of each layer where the layer is: only this node's own
    // layers count against its memory.
    let offloaded: u32 = config.shards.iter().map(|s| s.layers).sum();
    let local_layers = u64::from(model.n_layer().saturating_sub(offloaded).max(1));
    let kv_per_token =
        kv_bytes_per_token(&model) * local_layers / u64::from(model.n_layer().max(1));
    let free = mem_available();
    let parallel = config
        .parallel
        .unwrap_or_else(|| auto_parallel(kv_per_token, n_ctx_seq, free))
        .clamp(1, MAX_PARALLEL);
    // The whole cache is allocated now, so a device that cannot hold it is told so here, in
    // plain words, rather than by the kernel's OOM killer later.
    let kv_bytes = kv_per_token * u64::from(n_ctx_seq) * u64::from(parallel);
    if let Err(why) = kv_fits(kv_bytes, parallel, n_ctx_seq, free) {
        let _ = ready.send(Err(load_err(why)));
        return;
    }
    // One KV stream per sequence (not the unified cache): each sequence gets exactly its own
    // window, and its cells sit where they would if it ran alone, so its attention sums run in
    // the same order as a lone request's.
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx_seq * parallel))
        .with_n_seq_max(parallel)
        .with_n_batch(config.n_batch)
        .with_n_ubatch(config.n_batch)
        .with_n_threads(threads as i32)
        .with_n_threads_batch(threads as i32);
    let ctx = match model.new_context(backend, params) {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(load_err(format!("cannot create a llama.cpp context: {e}"))));
            return;
        }
    };
    // llama.cpp pads each sequence's window; the context is exactly `parallel` of them.
    let n_ctx_seq = ctx.n_ctx() / parallel;
    let info = EngineInfo {
        backend: "llama",
        model: config.model_name.clone(),
        architecture: model.meta_val_str("general.architecture").ok(),
        n_ctx: Some(n_ctx_seq),
        n_embd: u32::try_from(model.n_embd_out()).ok(),
        threads: Some(threads),
        slots: parallel as usize,
        queue_capacity: config.queue_capacity.max(1),
        kv_cache_bytes: Some(kv_per_token.saturating_mul(u64::from(ctx.n_ctx()))),
    };
    tracing::info!(model = %info.model, n_ctx = n_ctx_seq, parallel, threads, "llama engine ready");
    shared.alive.store(true, Ordering::SeqCst);
    if ready.send(Ok(info)).is_err() {
        return;
    }
    let embed = schedule::EmbedLimits {
        window: n_ctx_seq.min(embed::MAX_WINDOW),
        chunk: config
            .embed_chunk
            .unwrap_or_else(|| embed::chunk_tokens(model.n_vocab().max(1) as usize))
            .clamp(1, embed::MAX_WINDOW),
        threads,
    };
    let mut scheduler = schedule::Scheduler::new(
        &model,
        ctx,
        schedule::Limits { slots: parallel, n_ctx_seq, n_batch: config.n_batch, embed },
        &shared,
        config.shards.iter().map(|s| s.link.clone()).collect(),
        config.model_name.clone(),
    );
    let lost =
        scheduler.run(&jobs, |spec| bench::run(backend, &model, config.n_batch, threads, spec));
    shared.alive.store(false, Ordering::SeqCst);
    if let Some(e) = lost {
        // Whatever waits in the queue cannot run either; it hears why now rather than when the
        // engine is dropped.
        drop(scheduler);
        while let Ok(job) = jobs.try_recv() {
            match job {
                Job::Generate { tx, .. } => {
                    let _ = tx.try_send(Err(e.clone()));
                }
                Job::Bench { reply, .. } => {
                    let _ = reply.send(Err(e.clone()));
                }
                Job::Embed { reply, .. } => {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Most sequences `--parallel` may ask for: llama.cpp's own limit is higher, but every sequence
/// adds a KV window and a per-step row, and past this the context's memory dominates any gain.
const MAX_PARALLEL: u32 = 64;

/// The default number of sequences: up to 4, as many as fit their KV caches in a quarter of the
/// free memory. Four because generation on a small device is memory-bound (each step reads
/// every weight once, however many sequences it advances), so aggregate speed climbs steeply
/// from 1 to 4 sequences and then flattens while each stream slows; llama-server picks 4 too
/// when not told. A quarter of the free memory leaves room for the model, its compute buffers
/// and the rest of the device. Unknown free memory counts as room for all 4.
fn auto_parallel(kv_bytes_per_token: u64, n_ctx_seq: u32, free_bytes: Option<u64>) -> u32 {
    let per_seq = kv_bytes_per_token.saturating_mul(u64::from(n_ctx_seq)).max(1);
    let fit = free_bytes.map_or(4, |free| free / 4 / per_seq);
    fit.clamp(1, 4) as u32
}

/// The f16 K and V cache one token needs in every layer: the head sizes from the GGUF header
/// (`n_embd / n_head` when it has none). An upper bound for models with sliding-window layers,
/// whose llama.cpp cache keeps only the window there.
fn kv_bytes_per_token(model: &LlamaModel) -> u64 {
    let arch = model.meta_val_str("general.architecture").unwrap_or_default();
    let head = u64::from(model.n_embd().max(0) as u32) / u64::from(model.n_head().max(1));
    let dim = |key: &str| {
        model
            .meta_val_str(&format!("{arch}.attention.{key}"))
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(head)
    };
    let per_layer = u64::from(model.n_head_kv()) * (dim("key_length") + dim("value_length"));
    2 * u64::from(model.n_layer()) * per_layer
}

/// Whether a KV cache of `kv_bytes` fits in the free memory (unknown free memory: it is tried).
fn kv_fits(kv_bytes: u64, parallel: u32, n_ctx_seq: u32, free: Option<u64>) -> Result<(), String> {
    match free {
        Some(free) if kv_bytes > free => Err(format!(
            "the KV cache for {parallel} sequences of {n_ctx_seq} tokens needs {} MiB and {} MiB \
             are free: lower --parallel or --ctx",
            kv_bytes.div_ceil(1 << 20),
            free >> 20
        )),
        _ => Ok(()),
    }
}

/// `MemAvailable` from `/proc/meminfo`; `None` elsewhere.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::{auto_parallel, kv_fits};

    #[test]
    fn a_cache_larger_than_free_memory_is_refused_in_plain_words() {
        const MB: u64 = 1 << 20;
        assert_eq!(kv_fits(100 * MB, 4, 2048, Some(200 * MB)), Ok(()));
        assert_eq!(kv_fits(100 * MB, 4, 2048, None), Ok(()));
        let why = kv_fits(3000 * MB, 64, 32768, Some(2000 * MB)).unwrap_err();
        assert_eq!(
            why,
            "the KV cache for 64 sequences of 32768 tokens needs 3000 MiB and 2000 MiB are free: \
             lower --parallel or --ctx"
        );
    }

    #[test]
    fn auto_parallel_fits_a_quarter_of_free_memory_up_to_four() {
        const MB: u64 = 1 << 20;
        // SmolLM2-135M: 30 layers, 3 KV heads of 64 → 23 KB a token, 45 MB a 2048 window.
        let smol = 2 * 2 * 30 * 3 * 64;
        assert_eq!(auto_parallel(smol, 2048, Some(8000 * MB)), 4);
        assert_eq!(auto_parallel(smol, 2048, Some(400 * MB)), 2);
        assert_eq!(auto_parallel(smol, 2048, Some(10 * MB)), 1);
        assert_eq!(auto_parallel(smol, 2048, None), 4);
        assert_eq!(auto_parallel(0, 2048, Some(0)), 1);
    }
}
