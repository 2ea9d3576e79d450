//! One running request: its sequence in the shared context and everything that is its own
//! (sampler, stop strings, limits, the events its consumer has not taken yet).

use std::{collections::VecDeque, time::Instant};

use llama_cpp_2::{
    context::LlamaContext, model::LlamaModel, sampling::LlamaSampler, token::LlamaToken,
};
use nova_proto::{FinishReason, TaskId, TokenEvent, Usage, ValidRequest};
use tokio::sync::mpsc::{self, error::TrySendError};

use super::{
    grammar::Constraint,
    prepare::{build_sampler, Prepared},
};
use crate::{EngineError, OutputFilter};

pub(super) type Tx = mpsc::Sender<Result<TokenEvent, EngineError>>;

/// A prompt prefix another sequence evaluates for this one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Follow {
    pub(super) seq: usize,
    pub(super) serial: u64,
    pub(super) len: usize,
}

/// What a slot feeds the next batch.
pub(super) enum Feed<'a> {
    /// Nothing this step: its consumer lags, or it has finished.
    Nothing,
    /// Prompt tokens from `pos` on (the caller takes as many as the batch has room for).
    Prompt { rest: &'a [LlamaToken] },
    /// One token: a resumed one or the last sampled one.
    One(LlamaToken),
}

pub(super) struct Slot {
    pub(super) id: TaskId,
    /// Tells this request from a later one in the same sequence.
    pub(super) serial: u64,
    /// Waiting to copy the first `len` cells of the request `serial` in sequence `seq` rather
    /// than evaluate that shared prompt prefix again.
    pub(super) follow: Option<Follow>,
    tx: Tx,
    prepared: Prepared,
    /// Tokens in this sequence's KV cells.
    pub(super) pos: usize,
    /// The last sampled token, not yet evaluated.
    next: Option<LlamaToken>,
    sampler: LlamaSampler,
    /// The grammar of a JSON answer.
    constraint: Option<Constraint>,
    filter: OutputFilter,
    max_tokens: u32,
    ignore_eos: bool,
    generated: u32,
    admitted: Instant,
    prompt_ms: f64,
    gen_started: Option<Instant>,
    /// Events its consumer's channel had no room for; nothing is evaluated until they are out.
    outbox: VecDeque<Result<TokenEvent, EngineError>>,
    /// No more tokens: the slot frees once the outbox is delivered.
    finished: bool,
    /// Whether the scheduler has stopped counting it as running and in flight.
    pub(super) released: bool,
}

impl Slot {
    pub(super) fn new(
        model: &LlamaModel,
        serial: u64,
        req: &ValidRequest,
        prepared: Prepared,
        tx: Tx,
    ) -> Result<Self, EngineError> {
        let mut sampler = build_sampler(model, &req.params);
        // The repetition penalties must see the resumed tokens as this answer's own, exactly as
        // the first worker's sampler did, or greedy decoding would take another path.
        sampler.accept_many(prepared.resumed());
        let mut constraint =
            req.params.format.as_ref().map(|f| Constraint::new(model, f)).transpose()?;
        if let Some(c) = constraint.as_mut() {
            for &t in prepared.resumed() {
                if !c.allows(t) {
                    return Err(EngineError::Rejected {
                        kind: nova_proto::ErrorKind::InvalidRequest,
                        message: "the answer to continue does not match its JSON schema".into(),
                    });
                }
                c.accept(t)?;
            }
        }
        Ok(Self {
            id: req.id,
            serial,
            follow: None,
            tx,
            generated: prepared.resumed().len() as u32,
            prepared,
            pos: 0,
            next: None,
            sampler,
            constraint,
            filter: OutputFilter::new(&req.params.stop),
            max_tokens: req.params.max_tokens,
            ignore_eos: req.params.ignore_eos,
            admitted: Instant::now(),
            prompt_ms: 0.0,
            gen_started: None,
            outbox: VecDeque::new(),
            finished: false,
            released: false,
        })
    }

    /// Whether its consumer has gone: the slot frees without another word.
    pub(super) fn cancelled(&self) -> bool {
        self.tx.is_closed()
    }

    /// Whether its answer is complete (its last events may still wait in the outbox).
    pub(super) fn finished(&self) -> bool {
        self.finished
    }

    /// Whether it is done and delivered: the slot can be freed.
    pub(super) fn done(&self) -> bool {
        self.finished && self.outbox.is_empty()
    }

    /// Hands queued events to the consumer, as many as its channel takes.
    pub(super) fn flush(&mut self) {
        while let Some(ev) = self.outbox.pop_front() {
            match self.tx.try_send(ev) {
                Ok(()) => {}
                Err(TrySendError::Full(ev)) => {
                    self.outbox.push_front(ev);
                    return;
                }
                // `cancelled` notices at the next step.
                Err(TrySendError::Closed(_)) => return,
            }
        }
    }

    /// What this sequence evaluates next. Prompt tokens go in chunks; resumed tokens one per
    /// step, exactly as the first worker generated them: llama.cpp's batched and single-token
    /// evaluations of one sequence differ in the last bits, enough to flip a greedy choice
    /// dozens of tokens later (measured on SmolLM2), while this replay computes what the first
    /// worker computed.
    pub(super) fn feed(&self) -> Feed<'_> {
        if self.finished || !self.outbox.is_empty() || self.follow.is_some() {
            return Feed::Nothing;
        }
        let n_prompt = self.prepared.n_prompt;
        if self.pos < n_prompt {
            return Feed::Prompt { rest: &self.prepared.tokens[self.pos..n_prompt] };
        }
        match self.prepared.tokens.get(self.pos) {
            Some(&t) => Feed::One(t),
            None => self.next.map_or(Feed::Nothing, Feed::One),
        }
    }

    /// Whether the token at `pos` needs its logits: the last one of the prompt, and every one
    /// after it.
    pub(super) fn wants_logits(&self, pos: usize) -> bool {
        pos + 1 >= self.prepared.n_prompt
    }

    /// The prompt and resumed tokens, evaluated or not.
    pub(super) fn tokens(&self) -> &[LlamaToken] {
        &self.prepared.tokens
    }

    /// The prompt's length.
    pub(super) fn n_prompt(&self) -> usize {
        self.prepared.n_prompt
    }

    /// Whether it still generates (a finished one keeps its cells only until it is freed).
    pub(super) fn live(&self) -> bool {
        !self.finished
    }

    /// Records that `n` more tokens went into its cells.
    pub(super) fn evaluated(&mut self, n: usize) {
        self.pos += n;
        self.next = None;
    }

    /// Whether the evaluated tokens cover the prompt and the resumed answer, so the logits of
    /// the last one are the next token's.
    pub(super) fn ready_to_sample(&self) -> bool {
        !self.finished && self.next.is_none() && self.pos >= self.prepared.tokens.len()
    }

    /// Samples the next token from the logits at batch index `idx` and queues what it releases.
    pub(super) fn sample(
        &mut self,
        model: &LlamaModel,
        ctx: &LlamaContext<'_>,
        idx: i32,
        n_ctx: u32,
    ) {
        if self.gen_started.is_none() {
            self.prompt_ms = ms_since(self.admitted);
            self.gen_started = Some(Instant::now());
        }
        if self.generated >= self.max_tokens {
            return self.finish(FinishReason::Length);
        }
        if self.pos as u32 >= n_ctx {
            return self.finish(FinishReason::ContextFull);
        }
        let token = match self.draw(model, ctx, idx) {
            Ok(t) => t,
            Err(e) => return self.fail(e),
        };
        self.generated += 1;
        let vocab = model.vocab();
        if vocab.is_eog(token) && !self.ignore_eos {
            return self.finish(FinishReason::Stop);
        }
        let text = self.filter.push(&vocab.token_to_piece(token, false, None));
        if !text.is_empty() {
            self.outbox.push_back(Ok(TokenEvent::Token { text }));
        }
        if self.filter.stopped() {
            return self.finish(FinishReason::Stop);
        }
        // Ending here rather than after evaluating the token saves a step and changes nothing
        // a consumer sees: nothing more would be sampled.
        if self.generated >= self.max_tokens {
            return self.finish(FinishReason::Length);
        }
        if self.pos as u32 + 1 >= n_ctx {
            return self.finish(FinishReason::ContextFull);
        }
        self.next = Some(token);
    }

    /// Draws the next token from the logits at batch index `idx`, within the grammar of a JSON
    /// answer. Most tokens a model draws already fit the grammar, and judging one token is cheap
    /// where judging the whole vocabulary is not, so the vocabulary is masked only when the
    /// first draw does not fit.
    fn draw(
        &mut self,
        model: &LlamaModel,
        ctx: &LlamaContext<'_>,
        idx: i32,
    ) -> Result<LlamaToken, EngineError> {
        let Some(c) = self.constraint.as_mut() else {
            return Ok(self.sampler.sample(ctx, idx));
        };
        let mut candidates = ctx.token_data_array_ith(idx);
        candidates.apply_sampler(&mut self.sampler);
        let token = match candidates.selected_token() {
            Some(t) if c.allows(t) => t,
            _ => {
                let mut candidates = ctx.token_data_array_ith(idx);
                c.mask(&mut candidates)?;
                candidates.apply_sampler(&mut self.sampler);
                candidates
                    .selected_token()
                    .ok_or_else(|| EngineError::Decode("the sampler drew no token".into()))?
            }
        };
        self.sampler.accept(token);
        // An end of generation ends the answer; the grammar allowed it only once complete.
        if !model.vocab().is_eog(token) {
            c.accept(token)?;
        }
        Ok(token)
    }

    /// Ends the answer with `Done`, after what the stop filter still holds.
    fn finish(&mut self, finish_reason: FinishReason) {
        let rest = self.filter.finish();
        if !rest.is_empty() {
            self.outbox.push_back(Ok(TokenEvent::Token { text: rest }));
        }
        let usage = Usage {
            prompt_tokens: self.prepared.n_prompt as u32,
            completion_tokens: self.generated,
            prompt_ms: self.prompt_ms,
            generation_ms: self.gen_started.map_or(0.0, ms_since),
            context_used: self.prepared.context_used,
        };
        self.outbox.push_back(Ok(TokenEvent::Done { finish_reason, usage }));
        self.finished = true;
    }

    /// Ends the answer with an error.
    pub(super) fn fail(&mut self, e: EngineError) {
        tracing::warn!(task = %self.id.fmt_short(), error = %e, "generation failed");
        self.outbox.push_back(Err(e));
        self.finished = true;
    }
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}
