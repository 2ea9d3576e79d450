//! Embeddings from the node's own model, on the engine thread.
//!
//! A second llama.cpp context on the same weights, created on the first request and kept,
//! computes them: embeddings enabled, mean pooling over the tokens, one sequence. The
//! generation context is not touched, so running answers keep their cells.
//!
//! Memory: a context whose outputs are pooled still computes logits for every token it
//! evaluates (the model's graph always ends in the vocabulary projection), so one call over `n`
//! tokens holds `n × n_vocab` floats twice (the compute buffer and the output buffer). An input
//! is therefore evaluated in chunks of [`chunk_tokens`] tokens — about 170 for SmolLM2's 49k
//! vocabulary, 32 for Gemma 3's 262k — with its earlier chunks in the KV cache. Attention is
//! causal, so each token's hidden state is the one a single call would give; llama.cpp returns
//! the mean over each call's tokens, and the weighted mean of the chunks' means is the mean
//! over the whole input. The window (the most tokens of one input) costs only KV cache.
//!
//! Scheduling: the scheduler advances the oldest embedding request by one chunk per turn,
//! between generation steps, so a long batch of inputs delays running streams by one chunk's
//! evaluation at a time rather than by the whole batch.

use llama_cpp_2::{
    context::{
        params::{LlamaContextParams, LlamaPoolingType},
        LlamaContext,
    },
    llama_batch::LlamaBatch,
    model::LlamaModel,
    token::LlamaToken,
};
use nova_proto::{EmbedRequest, Embeddings, ErrorKind, TaskId};
use tokio::sync::oneshot;

use crate::EngineError;

/// Logits one evaluation may hold, in bytes: bounds the chunk (see the module doc).
const LOGITS_BUDGET: usize = 32 << 20;
/// Longest input embedded, in tokens, whatever the generation window: the KV cache of the
/// embedding context is this long.
pub(super) const MAX_WINDOW: u32 = 2048;

/// Tokens evaluated in one call for a vocabulary of `n_vocab`: as many as [`LOGITS_BUDGET`]
/// holds, between 16 and 512.
pub(super) fn chunk_tokens(n_vocab: usize) -> u32 {
    (LOGITS_BUDGET / (n_vocab.max(1) * 4)).clamp(16, 512) as u32
}

/// Where an embedding request's reply goes.
pub(super) type Reply = oneshot::Sender<Result<Embeddings, EngineError>>;

/// An embedding request under way: its inputs tokenized, the vectors done so far, and the
/// running sum of the input being evaluated.
pub(super) struct Pending {
    id: TaskId,
    model: String,
    inputs: Vec<Vec<LlamaToken>>,
    vectors: Vec<Vec<f32>>,
    /// Tokens of the current input evaluated so far.
    pos: usize,
    /// Sum over the evaluated tokens of the current input of their hidden states.
    sum: Vec<f64>,
    reply: Reply,
}

impl Pending {
    /// Tokenizes every input first, so an input too long for `window` is refused before
    /// anything is evaluated.
    pub(super) fn new(
        model: &LlamaModel,
        name: &str,
        req: EmbedRequest,
        window: u32,
        reply: Reply,
    ) -> Result<Self, (EngineError, Reply)> {
        let vocab = model.vocab();
        let mut inputs = Vec::with_capacity(req.inputs.len());
        for (i, text) in req.inputs.iter().enumerate() {
            let tokens = vocab.tokenize(text.as_bytes(), true, false);
            let (kind, message) = if tokens.is_empty() {
                (ErrorKind::InvalidRequest, format!("input[{i}] has no tokens"))
            } else if tokens.len() > window as usize {
                let n = tokens.len();
                let why =
                    format!("input[{i}] is {n} tokens; {name} embeds at most {window} per input");
                (ErrorKind::PromptTooLong, why)
            } else {
                inputs.push(tokens);
                continue;
            };
            return Err((EngineError::Rejected { kind, message }, reply));
        }
        Ok(Self {
            id: req.id,
            model: name.to_owned(),
            vectors: Vec::with_capacity(inputs.len()),
            inputs,
            pos: 0,
            sum: Vec::new(),
            reply,
        })
    }

    /// The request's id, for logs.
    pub(super) fn id(&self) -> TaskId {
        self.id
    }

    /// Whether the client went away.
    pub(super) fn cancelled(&self) -> bool {
        self.reply.is_closed()
    }

    fn done(&self) -> bool {
        self.vectors.len() == self.inputs.len()
    }

    /// Sends the vectors (or `err`) to the client.
    pub(super) fn finish(self, err: Option<EngineError>) {
        let prompt_tokens = self.inputs.iter().map(Vec::len).sum::<usize>() as u32;
        let reply = match err {
            Some(e) => Err(e),
            None => Ok(Embeddings { model: self.model, vectors: self.vectors, prompt_tokens }),
        };
        let _ = self.reply.send(reply);
    }
}

/// The embedding context.
pub(super) struct Embedder<'m> {
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    chunk: u32,
}

impl<'m> Embedder<'m> {
    /// A context of `window` tokens for `model`, evaluating `chunk` tokens a call.
    pub(super) fn new(
        model: &'m LlamaModel,
        window: u32,
        chunk: u32,
        threads: u32,
    ) -> Result<Self, EngineError> {
        let params = LlamaContextParams::default()
            .with_n_ctx(std::num::NonZeroU32::new(window.max(chunk)))
            .with_n_seq_max(1)
            .with_n_batch(chunk)
            .with_n_ubatch(chunk)
            .with_n_threads(threads as i32)
            .with_n_threads_batch(threads as i32)
            .with_embeddings(true)
            .with_pooling_type(LlamaPoolingType::Mean);
        let ctx = model.new_context(super::backend(), params).map_err(|e| {
            EngineError::Decode(format!("cannot create the embedding context: {e}"))
        })?;
        tracing::info!(window, chunk, "embedding context ready");
        Ok(Self { ctx, batch: LlamaBatch::new(chunk as usize, 1), chunk })
    }

    /// Evaluates the next chunk of `job`'s current input; true once every input has its
    /// vector. A failure ends the request: the caller finishes it with the error.
    pub(super) fn advance(&mut self, job: &mut Pending) -> Result<bool, EngineError> {
        if job.done() {
            return Ok(true);
        }
        let input = &job.inputs[job.vectors.len()];
        if job.pos == 0 {
            // Whatever the last input left in the cache is not this one's.
            self.ctx.clear_kv_cache();
        }
        let end = (job.pos + self.chunk as usize).min(input.len());
        let decode_err = |e: String| EngineError::Decode(format!("embedding: {e}"));
        self.batch.clear();
        for (i, &t) in input[job.pos..end].iter().enumerate() {
            // Pooling needs every token's output.
            self.batch
                .add(t, (job.pos + i) as i32, &[0], true)
                .map_err(|e| decode_err(e.to_string()))?;
        }
        self.ctx.decode(&mut self.batch).map_err(|e| decode_err(e.to_string()))?;
        let mean = self.ctx.embeddings_seq_ith(0).map_err(|e| decode_err(e.to_string()))?;
        if job.pos == 0 {
            job.sum = vec![0.0; mean.len()];
        }
        let n = (end - job.pos) as f64;
        for (s, m) in job.sum.iter_mut().zip(mean) {
            *s += f64::from(*m) * n;
        }
        job.pos = end;
        if end == input.len() {
            let len = input.len() as f64;
            let mut v: Vec<f32> = job.sum.iter().map(|s| (s / len) as f32).collect();
            if !nova_proto::embed::l2_normalize(&mut v) {
                return Err(decode_err(format!(
                    "input[{}] gave a vector that is zero or not finite",
                    job.vectors.len()
                )));
            }
            job.vectors.push(v);
            job.pos = 0;
        }
        Ok(job.done())
    }
}

#[cfg(test)]
mod tests {
    use super::chunk_tokens;

    #[test]
    fn chunks_hold_the_logits_budget() {
        // SmolLM2: 49,152 tokens; Gemma 3: 262,144.
        assert_eq!(chunk_tokens(49_152), 170);
        assert_eq!(chunk_tokens(262_144), 32);
        assert_eq!(chunk_tokens(1_000), 512);
        assert_eq!(chunk_tokens(10_000_000), 16);
        assert_eq!(chunk_tokens(0), 512);
    }
}
