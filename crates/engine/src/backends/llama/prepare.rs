//! Turns a request into the tokens its sequence evaluates: template, tokenize, fit the context
//! passages into the window, and the resumed answer's tokens.

use std::time::{SystemTime, UNIX_EPOCH};

use llama_cpp_2::{
    model::{LlamaChatMessage, LlamaModel},
    sampling::LlamaSampler,
    token::LlamaToken,
};
use nova_proto::{Prompt, SamplingParams, ValidRequest};

use crate::EngineError;

/// Window of recent tokens the repetition penalties look at.
const PENALTY_LAST_N: i32 = 64;

/// A request's tokens, ready for a sequence.
pub(super) struct Prepared {
    /// The prompt, then the resumed answer.
    pub(super) tokens: Vec<LlamaToken>,
    /// How many of `tokens` are the prompt.
    pub(super) n_prompt: usize,
    /// Context passages that went into the prompt.
    pub(super) context_used: u32,
}

impl Prepared {
    /// The tokens of another worker's answer this one continues.
    pub(super) fn resumed(&self) -> &[LlamaToken] {
        &self.tokens[self.n_prompt..]
    }
}

/// Tokenizes `req` for a window of `n_ctx` tokens.
pub(super) fn prepare(
    model: &LlamaModel,
    req: &ValidRequest,
    n_ctx: u32,
) -> Result<Prepared, EngineError> {
    // Passages go in while the window holds them, counted with this model's own tokenizer
    // and template; the rest are dropped, least relevant first.
    let (prompt_tokens, context_used) = if req.context.is_empty() {
        (tokenize(model, &req.prompt)?, 0)
    } else {
        let mut last = None;
        let (prompt, used) = req.fit_context(n_ctx as usize, |p| {
            let t = tokenize(model, p).ok()?;
            let n = t.len();
            last = Some(t);
            Some(n)
        });
        // `fit_context` tries the longest first: the last prompt counted is the one kept,
        // unless it kept none of the passages.
        match (used, last) {
            (1.., Some(t)) => (t, used as u32),
            _ => (tokenize(model, &prompt)?, 0),
        }
    };
    // Continuing another worker's answer: its text so far follows the prompt as the start
    // of this model's own answer (plain text, no special tokens).
    let resumed = match &req.resume {
        Some(r) if !r.text.is_empty() => model.vocab().tokenize(r.text.as_bytes(), false, false),
        _ => Vec::new(),
    };
    let mut tokens = prompt_tokens;
    let n_prompt = tokens.len();
    tokens.extend_from_slice(&resumed);
    if tokens.len() >= n_ctx as usize {
        return Err(EngineError::PromptTooLong { tokens: tokens.len(), n_ctx });
    }
    Ok(Prepared { tokens, n_prompt, context_used })
}

fn tokenize(model: &LlamaModel, prompt: &Prompt) -> Result<Vec<LlamaToken>, EngineError> {
    let vocab = model.vocab();
    let tokens = match prompt {
        Prompt::Text(text) => vocab.tokenize(text.as_bytes(), true, false),
        Prompt::Chat(messages) => match model.chat_template(None) {
            Ok(tmpl) => {
                let chat = messages
                    .iter()
                    .map(|m| LlamaChatMessage::new(m.role.as_str().into(), m.content.clone()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| {
                        EngineError::Template(format!("message contains a NUL byte: {e}"))
                    })?;
                let text = model
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

/// The sampler chain: penalties first (they need raw logits), then truncation, then the draw.
pub(super) fn build_sampler(model: &LlamaModel, p: &SamplingParams) -> LlamaSampler {
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
