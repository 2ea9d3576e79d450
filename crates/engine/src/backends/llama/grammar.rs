//! JSON answers: a response format's schema as a llama.cpp grammar, enforced on every token.
//!
//! The grammar is kept out of the sampler chain. llama.cpp's `llama_sampler_sample` accepts the
//! token it draws into every sampler of the chain, and a grammar that is handed a token it does
//! not allow throws (or, for an end-of-generation token, aborts the process) — across the FFI.
//! So a slot draws with its chain, asks the grammar whether the token is allowed, and only then
//! accepts it: a token is only ever accepted after the grammar itself let it through.

use std::time::{Duration, Instant};

use llama_cpp_2::{
    model::LlamaModel,
    sampling::LlamaSampler,
    token::{data::LlamaTokenData, data_array::LlamaTokenDataArray, LlamaToken},
};
use nova_proto::{ErrorKind, ResponseFormat};

use crate::EngineError;

/// Longest a grammar may take to judge one token's candidates. A grammar ambiguous enough to
/// take longer would stall every request decoding on this engine, so its request ends instead.
const MAX_MASK_TIME: Duration = Duration::from_millis(500);

/// The grammar of one answer.
pub(super) struct Constraint {
    grammar: LlamaSampler,
}

fn rejected(message: String) -> EngineError {
    EngineError::Rejected { kind: ErrorKind::InvalidRequest, message }
}

impl Constraint {
    /// The grammar of `format`'s schema, built with llama.cpp's own converter and parser.
    pub(super) fn new(model: &LlamaModel, format: &ResponseFormat) -> Result<Self, EngineError> {
        let gbnf = llama_cpp_2::json_schema_to_grammar(format.schema()).map_err(|_| {
            rejected(
                "llama.cpp cannot turn this JSON schema into a grammar (an unresolved $ref, an \
                 invalid pattern or minimum/maximum, or a schema it cannot parse)"
                    .into(),
            )
        })?;
        let grammar = LlamaSampler::grammar(model, &gbnf, "root").map_err(|e| {
            rejected(format!(
                "the grammar llama.cpp built from this JSON schema does not load ({e}); \
                 the schema may repeat an item more times than it allows"
            ))
        })?;
        Ok(Self { grammar })
    }

    /// Whether `token` may come next.
    pub(super) fn allows(&mut self, token: LlamaToken) -> bool {
        let mut one = LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 0.0, 0.0)], false);
        one.apply_sampler(&mut self.grammar);
        one.data.first().is_some_and(|d| d.logit().is_finite())
    }

    /// Rules out of `candidates` every token that may not come next. Fails when none is left (a
    /// grammar no token of this vocabulary can continue) or judging took too long.
    pub(super) fn mask(&mut self, candidates: &mut LlamaTokenDataArray) -> Result<(), EngineError> {
        let started = Instant::now();
        candidates.apply_sampler(&mut self.grammar);
        if started.elapsed() > MAX_MASK_TIME {
            return Err(rejected(format!(
                "the JSON schema's grammar took {} ms to judge one token (the limit is {} ms): \
                 simplify the schema (fewer overlapping anyOf branches)",
                started.elapsed().as_millis(),
                MAX_MASK_TIME.as_millis()
            )));
        }
        if !candidates.data.iter().any(|d| d.logit().is_finite()) {
            return Err(EngineError::Decode(
                "the JSON schema's grammar allows no token of this model's vocabulary here".into(),
            ));
        }
        Ok(())
    }

    /// Moves the grammar past `token`, which [`Self::allows`] or [`Self::mask`] let through.
    pub(super) fn accept(&mut self, token: LlamaToken) -> Result<(), EngineError> {
        self.grammar
            .try_accept(token)
            .map_err(|e| EngineError::Decode(format!("the grammar refused an allowed token: {e}")))
    }
}
