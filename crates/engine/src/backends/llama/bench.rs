//! Throughput measurement of the engine's model, done the way llama.cpp's `llama-bench` does it
//! (random tokens, a warm-up run, a cleared KV cache before each run, and a context sized to
//! each test: context size changes speed measurably) so the two compare directly.

use std::{num::NonZeroU32, time::Instant};

use llama_cpp_2::{
    context::{params::LlamaContextParams, LlamaContext},
    llama_backend::LlamaBackend,
    llama_batch::LlamaBatch,
    model::LlamaModel,
    token::LlamaToken,
};
use serde::Serialize;

use crate::EngineError;

/// What to measure.
#[derive(Debug, Clone, Serialize)]
pub struct BenchSpec {
    /// Prompt-processing sizes, e.g. `[128, 512]`.
    pub prompt: Vec<u32>,
    /// Generation lengths, e.g. `[128]`.
    pub gen: Vec<u32>,
    /// Timed runs of each test (after one untimed warm-up).
    pub runs: u32,
}

/// The result of one test: tokens per second of each run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchTest {
    /// `pp128`, `tg128`, …
    pub name: String,
    /// Tokens per second of each timed run.
    pub samples: Vec<f64>,
}

impl BenchTest {
    /// Mean tokens per second.
    pub fn mean(&self) -> f64 {
        self.samples.iter().sum::<f64>() / self.samples.len().max(1) as f64
    }

    /// Sample standard deviation (0 with fewer than two runs).
    pub fn sd(&self) -> f64 {
        let n = self.samples.len();
        if n < 2 {
            return 0.0;
        }
        let m = self.mean();
        (self.samples.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    }
}

/// All tests of one benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Threads the context uses.
    pub threads: u32,
    /// Batch size used for prompt processing.
    pub n_batch: u32,
    /// One entry per test.
    pub tests: Vec<BenchTest>,
}

/// A small deterministic generator so every run feeds the same "random" tokens.
struct Lcg(u64);

impl Lcg {
    fn token(&mut self, n_vocab: i32) -> LlamaToken {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        LlamaToken(((self.0 >> 33) % n_vocab.max(1) as u64) as i32)
    }
}

/// A context of `n_ctx` tokens with the engine's threads and batch, as llama-bench makes one
/// per test.
fn context<'m>(
    backend: &LlamaBackend,
    model: &'m LlamaModel,
    n_ctx: u32,
    n_batch: u32,
    threads: u32,
) -> Result<LlamaContext<'m>, EngineError> {
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx.max(1)))
        .with_n_batch(n_batch)
        .with_n_ubatch(n_batch)
        .with_n_threads(threads as i32)
        .with_n_threads_batch(threads as i32);
    model
        .new_context(backend, params)
        .map_err(|e| EngineError::Decode(format!("cannot create a bench context: {e}")))
}

pub(super) fn run(
    backend: &LlamaBackend,
    model: &LlamaModel,
    n_batch: u32,
    threads: u32,
    spec: &BenchSpec,
) -> Result<BenchReport, EngineError> {
    let mut rng = Lcg(42);
    let max_ctx = model.n_ctx_train();
    let mut tests = Vec::new();
    // A size of 0 means "no such test", as `-p 0` / `-n 0` do for llama-bench.
    for &n in spec.prompt.iter().filter(|&&n| n > 0) {
        if n >= max_ctx {
            return Err(EngineError::PromptTooLong { tokens: n as usize, n_ctx: max_ctx });
        }
        let ctx = &mut context(backend, model, n, n_batch, threads)?;
        prompt_run(model, ctx, n, n_batch, &mut rng)?; // warm-up
        let mut samples = Vec::new();
        for _ in 0..spec.runs.max(1) {
            let t = Instant::now();
            prompt_run(model, ctx, n, n_batch, &mut rng)?;
            samples.push(f64::from(n) / t.elapsed().as_secs_f64());
        }
        tests.push(BenchTest { name: format!("pp{n}"), samples });
    }
    for &n in spec.gen.iter().filter(|&&n| n > 0) {
        if n >= max_ctx {
            return Err(EngineError::PromptTooLong { tokens: n as usize, n_ctx: max_ctx });
        }
        let ctx = &mut context(backend, model, n, n_batch, threads)?;
        gen_run(model, ctx, 1, &mut rng)?; // warm-up
        let mut samples = Vec::new();
        for _ in 0..spec.runs.max(1) {
            let t = Instant::now();
            gen_run(model, ctx, n, &mut rng)?;
            samples.push(f64::from(n) / t.elapsed().as_secs_f64());
        }
        tests.push(BenchTest { name: format!("tg{n}"), samples });
    }
    Ok(BenchReport { threads, n_batch, tests })
}

fn decode_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Decode(e.to_string())
}

fn first_token(model: &LlamaModel, rng: &mut Lcg) -> LlamaToken {
    let vocab = model.vocab();
    if vocab.should_add_bos() {
        vocab.bos()
    } else {
        rng.token(model.n_vocab())
    }
}

fn prompt_run(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    n: u32,
    n_batch: u32,
    rng: &mut Lcg,
) -> Result<(), EngineError> {
    ctx.clear_kv_cache();
    let n_vocab = model.n_vocab();
    let mut tokens = Vec::with_capacity(n as usize);
    tokens.push(first_token(model, rng));
    while tokens.len() < n as usize {
        tokens.push(rng.token(n_vocab));
    }
    let mut batch = LlamaBatch::new(n_batch as usize, 1);
    let mut pos = 0;
    for part in tokens.chunks(n_batch as usize) {
        batch.clear();
        for (j, &t) in part.iter().enumerate() {
            batch.add(t, pos, &[0], j + 1 == part.len()).map_err(decode_err)?;
            pos += 1;
        }
        ctx.decode(&mut batch).map_err(decode_err)?;
    }
    ctx.synchronize();
    Ok(())
}

fn gen_run(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    n: u32,
    rng: &mut Lcg,
) -> Result<(), EngineError> {
    ctx.clear_kv_cache();
    let n_vocab = model.n_vocab();
    let mut token = first_token(model, rng);
    let mut batch = LlamaBatch::new(1, 1);
    for pos in 0..n as i32 {
        batch.clear();
        batch.add(token, pos, &[0], true).map_err(decode_err)?;
        ctx.decode(&mut batch).map_err(decode_err)?;
        ctx.synchronize();
        token = rng.token(n_vocab);
    }
    Ok(())
}
