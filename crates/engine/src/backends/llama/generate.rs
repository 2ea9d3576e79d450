//! One generation on the engine thread: template, tokenize, evaluate the prompt, sample.

use std::{
    sync::atomic::Ordering,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use llama_cpp_2::{
    context::LlamaContext,
    llama_batch::LlamaBatch,
    model::{LlamaChatMessage, LlamaModel},
    sampling::LlamaSampler,
    token::LlamaToken,
};
use nova_proto::{FinishReason, Prompt, SamplingParams, TokenEvent, Usage, ValidRequest};
use tokio::sync::mpsc;

use super::Shared;
use crate::{EngineError, OutputFilter};

type Tx = mpsc::Sender<Result<TokenEvent, EngineError>>;

/// Window of recent tokens the repetition penalties look at.
const PENALTY_LAST_N: i32 = 64;

pub(super) struct Generator<'a> {
    pub(super) model: &'a LlamaModel,
    pub(super) n_batch: u32,
    pub(super) shared: &'a Shared,
}

/// How a generation ended when it did not end normally.
enum Abort {
    /// The receiver was dropped or the engine is shutting down: stop quietly.
    Cancelled,
    Failed(EngineError),
}

impl From<EngineError> for Abort {
    fn from(e: EngineError) -> Self {
        Self::Failed(e)
    }
}

impl Generator<'_> {
    pub(super) fn run(&self, ctx: &mut LlamaContext<'_>, req: ValidRequest, tx: &Tx) {
        let id = req.id;
        match self.generate(ctx, req, tx) {
            Ok(()) => {}
            Err(Abort::Cancelled) => {
                tracing::debug!(task = %id.fmt_short(), "generation cancelled")
            }
            Err(Abort::Failed(e)) => {
                tracing::warn!(task = %id.fmt_short(), error = %e, "generation failed");
                let _ = tx.blocking_send(Err(e));
            }
        }
    }

    fn cancelled(&self, tx: &Tx) -> bool {
        tx.is_closed() || self.shared.shutdown.load(Ordering::Relaxed)
    }

    fn generate(
        &self,
        ctx: &mut LlamaContext<'_>,
        req: ValidRequest,
        tx: &Tx,
    ) -> Result<(), Abort> {
        let params = &req.params;
        let n_ctx = ctx.n_ctx();
        // Passages go in while the window holds them, counted with this model's own tokenizer
        // and template; the rest are dropped, least relevant first.
        let (prompt_tokens, context_used) = if req.context.is_empty() {
            (self.tokenize(&req.prompt)?, 0)
        } else {
            let mut last = None;
            let (prompt, used) = req.fit_context(n_ctx as usize, |p| {
                let t = self.tokenize(p).ok()?;
                let n = t.len();
                last = Some(t);
                Some(n)
            });
            // `fit_context` tries the longest first: the last prompt counted is the one kept,
            // unless it kept none of the passages.
            match (used, last) {
                (1.., Some(t)) => (t, used as u32),
                _ => (self.tokenize(&prompt)?, 0),
            }
        };
        // Continuing another worker's answer: its text so far follows the prompt as the start
        // of this model's own answer (plain text, no special tokens).
        let resumed = match &req.resume {
            Some(r) if !r.text.is_empty() => {
                self.model.vocab().tokenize(r.text.as_bytes(), false, false)
            }
            _ => Vec::new(),
        };
        let mut tokens = prompt_tokens;
        let n_prompt = tokens.len();
        tokens.extend_from_slice(&resumed);
        if tokens.len() >= n_ctx as usize {
            return Err(EngineError::PromptTooLong { tokens: tokens.len(), n_ctx }.into());
        }
        ctx.clear_kv_cache();

        let started = Instant::now();
        // Evaluate the prompt in chunks, checking for cancellation between them.
        let chunk = self.n_batch.max(1) as usize;
        let mut batch = LlamaBatch::new(chunk.max(1), 1);
        let mut pos: i32 = 0;
        for (i, part) in tokens[..n_prompt].chunks(chunk).enumerate() {
            if self.cancelled(tx) {
                return Err(Abort::Cancelled);
            }
            batch.clear();
            let last_chunk = (i + 1) * chunk >= n_prompt;
            for (j, &t) in part.iter().enumerate() {
                let logits = last_chunk && j + 1 == part.len();
                batch.add(t, pos, &[0], logits).map_err(decode_err)?;
                pos += 1;
            }
            ctx.decode(&mut batch).map_err(decode_err)?;
        }
        // Resumed tokens go in one at a time, as the first worker generated them: llama.cpp's
        // batched and single-token evaluations differ in the last bits, enough to flip a greedy
        // choice dozens of tokens later (measured on SmolLM2), while this replay computes what
        // the first worker computed. It costs about the time that worker spent generating them.
        for &t in &resumed {
            if self.cancelled(tx) {
                return Err(Abort::Cancelled);
            }
            batch.clear();
            batch.add(t, pos, &[0], true).map_err(decode_err)?;
            pos += 1;
            ctx.decode(&mut batch).map_err(decode_err)?;
        }
        let prompt_ms = ms_since(started);

        let gen_started = Instant::now();
        let mut sampler = build_sampler(self.model, params);
        // The repetition penalties must see the resumed tokens as this answer's own, exactly as
        // the first worker's sampler did, or greedy decoding would take another path.
        sampler.accept_many(&resumed);
        let vocab = self.model.vocab();
        let mut filter = OutputFilter::new(&params.stop);
        let mut generated: u32 = resumed.len() as u32;
        let mut logits_idx = batch.n_tokens() - 1;
        let finish = loop {
            if generated >= params.max_tokens {
                break FinishReason::Length;
            }
            if pos as u32 >= n_ctx {
                break FinishReason::ContextFull;
            }
            if self.cancelled(tx) {
                return Err(Abort::Cancelled);
            }
            let token = sampler.sample(ctx, logits_idx);
            generated += 1;
            if vocab.is_eog(token) && !params.ignore_eos {
                break FinishReason::Stop;
            }
            let piece = vocab.token_to_piece(token, false, None);
            let text = filter.push(&piece);
            if !text.is_empty() {
                send(tx, TokenEvent::Token { text })?;
            }
            if filter.stopped() {
                break FinishReason::Stop;
            }
            batch.clear();
            batch.add(token, pos, &[0], true).map_err(decode_err)?;
            pos += 1;
            ctx.decode(&mut batch).map_err(decode_err)?;
            logits_idx = 0;
        };
        let rest = filter.finish();
        if !rest.is_empty() {
            send(tx, TokenEvent::Token { text: rest })?;
        }
        let usage = Usage {
            prompt_tokens: n_prompt as u32,
            completion_tokens: generated,
            prompt_ms,
            generation_ms: ms_since(gen_started),
            context_used,
        };
        send(tx, TokenEvent::Done { finish_reason: finish, usage })
    }

    fn tokenize(&self, prompt: &Prompt) -> Result<Vec<LlamaToken>, EngineError> {
        let vocab = self.model.vocab();
        let tokens = match prompt {
            Prompt::Text(text) => vocab.tokenize(text.as_bytes(), true, false),
            Prompt::Chat(messages) => match self.model.chat_template(None) {
                Ok(tmpl) => {
                    let chat = messages
                        .iter()
                        .map(|m| LlamaChatMessage::new(m.role.as_str().into(), m.content.clone()))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| {
                            EngineError::Template(format!("message contains a NUL byte: {e}"))
                        })?;
                    let text = self
                        .model
                        .apply_chat_template(&tmpl, &chat, true)
                        .map_err(|e| EngineError::Template(e.to_string()))?;
                    // The template's own markers are special tokens, so parse them as such.
                    vocab.tokenize(text.as_bytes(), true, true)
                }
                // A base model has no template: it continues the text of the conversation.
                Err(_) => {
                    let text: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
                    vocab.tokenize(text.join("\n\n").as_bytes(), true, false)
                }
            },
        };
        if tokens.is_empty() {
            return Err(EngineError::Template("the prompt has no tokens".into()));
        }
        Ok(tokens)
    }
}

fn send(tx: &Tx, ev: TokenEvent) -> Result<(), Abort> {
    tx.blocking_send(Ok(ev)).map_err(|_| Abort::Cancelled)
}

fn decode_err(e: impl std::fmt::Display) -> Abort {
    Abort::Failed(EngineError::Decode(e.to_string()))
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// The sampler chain: penalties first (they need raw logits), then truncation, then the draw.
fn build_sampler(model: &LlamaModel, p: &SamplingParams) -> LlamaSampler {
    let mut chain = Vec::with_capacity(5);
    if p.repeat_penalty != 1.0 || p.frequency_penalty != 0.0 || p.presence_penalty != 0.0 {
        chain.push(LlamaSampler::penalties(
            model.n_vocab(),
            PENALTY_LAST_N,
            p.repeat_penalty,
            p.frequency_penalty,
            p.presence_penalty,
        ));
    }
    if p.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if p.top_k > 0 {
            chain.push(LlamaSampler::top_k(p.top_k as i32));
        }
        if p.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(p.top_p, 1));
        }
        chain.push(LlamaSampler::temp(p.temperature));
        chain.push(LlamaSampler::dist(seed32(p.seed)));
    }
    LlamaSampler::chain_simple(chain)
}

fn seed32(seed: Option<u64>) -> u32 {
    let s = seed.unwrap_or_else(|| {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
    });
    (s ^ (s >> 32)) as u32
}
