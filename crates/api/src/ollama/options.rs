//! Ollama's `options` object, and the request fields nova cannot honour.

use std::collections::BTreeMap;

use nova_proto::{Limits, SamplingParams, Strategy};
use serde::{de::IgnoredAny, Deserialize};
use serde_json::Value;

use super::OllamaError;
use crate::openai::chat::{NovaOptions, Stop};

/// Options Ollama clients may send that decide how a model is loaded or run on its device,
/// not what it answers: each worker sets these for itself, so they are accepted and left to
/// it. `mirostat_tau`/`mirostat_eta` only matter with `mirostat`, which is refused unless off.
const DEVICE_OPTIONS: [&str; 18] = [
    "num_ctx",
    "num_batch",
    "num_gpu",
    "main_gpu",
    "low_vram",
    "f16_kv",
    "logits_all",
    "vocab_only",
    "use_mmap",
    "use_mlock",
    "embedding_only",
    "num_thread",
    "numa",
    "num_keep",
    "repeat_last_n",
    "penalize_newline",
    "mirostat_tau",
    "mirostat_eta",
];

/// `options`: sampling in Ollama's names, and nova's routing beside them (Ollama clients pass
/// the object through as given, so this is where they can reach nova's strategies).
#[derive(Debug, Default, Deserialize)]
pub(super) struct Options {
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<u32>,
    /// Negative: a random seed (Ollama's -1).
    seed: Option<i64>,
    /// Tokens to generate; -1 (until the model stops) and -2 (until the context is full) mean
    /// up to the node's limit. Absent: nova's default, as in its other APIs.
    num_predict: Option<i64>,
    stop: Option<Stop>,
    repeat_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    // Samplers nova's engines lack, accepted at the value that turns them off (clients that
    // send every option send those).
    mirostat: Option<f64>,
    typical_p: Option<f64>,
    tfs_z: Option<f64>,
    min_p: Option<f64>,
    // nova's routing, as in the OpenAI API's `nova` object.
    strategy: Option<Strategy>,
    fanout: Option<usize>,
    #[serde(default, deserialize_with = "nova_proto::deserialize_tags")]
    tags: Vec<String>,
    #[serde(default)]
    debug: bool,
    #[serde(default)]
    rag: bool,
    /// Everything else: [`DEVICE_OPTIONS`] pass; any other name is refused, since a typo in a
    /// routing option would otherwise route silently the default way.
    #[serde(flatten)]
    others: BTreeMap<String, IgnoredAny>,
}

impl Options {
    /// The sampling parameters these options ask for, nova's defaults elsewhere. Bounds are
    /// checked once the request is built ([`nova_proto::ValidRequest::new`]).
    pub(super) fn sampling(
        &self,
        limits: &Limits,
        format: Option<&Value>,
    ) -> Result<SamplingParams, OllamaError> {
        let format = crate::format::ollama(format).map_err(OllamaError::bad)?;
        if let Some(name) = self.others.keys().find(|k| !DEVICE_OPTIONS.contains(&k.as_str())) {
            return Err(OllamaError::bad(format!(
                "options.{}: not an option nova knows; it takes Ollama's sampling options \
                 (temperature, top_p, top_k, seed, num_predict, stop, repeat_penalty, \
                 presence_penalty, frequency_penalty) and its routing options (strategy, \
                 fanout, tags, debug, rag)",
                truncated(name)
            )));
        }
        off("mirostat", self.mirostat, 0.0)?;
        off("typical_p", self.typical_p, 1.0)?;
        off("tfs_z", self.tfs_z, 1.0)?;
        off("min_p", self.min_p, 0.0)?;
        let d = SamplingParams::default();
        let max_tokens = match self.num_predict {
            None => d.max_tokens,
            Some(-1 | -2) => limits.max_tokens,
            Some(n) if n >= 1 && n <= i64::from(limits.max_tokens) => n as u32,
            Some(n) => {
                return Err(OllamaError::bad(format!(
                    "options.num_predict must be -1, -2 or between 1 and {}, got {n}",
                    limits.max_tokens
                )))
            }
        };
        Ok(SamplingParams {
            temperature: self.temperature.unwrap_or(d.temperature),
            top_p: self.top_p.unwrap_or(d.top_p),
            top_k: self.top_k.unwrap_or(d.top_k),
            seed: self.seed.and_then(|s| u64::try_from(s).ok()),
            max_tokens,
            stop: match &self.stop {
                None => Vec::new(),
                Some(Stop::One(s)) => vec![s.clone()],
                Some(Stop::Many(v)) => v.clone(),
            },
            repeat_penalty: self.repeat_penalty.unwrap_or(d.repeat_penalty),
            frequency_penalty: self.frequency_penalty.unwrap_or(d.frequency_penalty),
            presence_penalty: self.presence_penalty.unwrap_or(d.presence_penalty),
            ignore_eos: false,
            format,
        })
    }

    /// The routing part, for [`NovaOptions::job`], so both APIs route alike.
    pub(super) fn routing(self) -> NovaOptions {
        NovaOptions {
            strategy: self.strategy,
            fanout: self.fanout,
            tags: self.tags,
            debug: self.debug,
            rag: self.rag,
        }
    }
}

/// Refuses a sampler nova lacks unless it is set to the value that turns it off.
fn off(name: &str, value: Option<f64>, neutral: f64) -> Result<(), OllamaError> {
    match value {
        Some(v) if v != neutral => Err(OllamaError::bad(format!(
            "options.{name} is not supported: nova's samplers are temperature, top_p, top_k \
             and the penalties (send {neutral} or leave it out)"
        ))),
        _ => Ok(()),
    }
}

/// The fields of `/api/chat` and `/api/generate` that ask for what nova's workers cannot do.
pub(super) struct Unsupported<'a> {
    pub(super) think: &'a Option<Value>,
    pub(super) logprobs: Option<bool>,
    pub(super) top_logprobs: Option<u32>,
}

impl Unsupported<'_> {
    /// A 400 for the first one set to anything but its "off" value.
    pub(super) fn check(&self) -> Result<(), OllamaError> {
        match self.think {
            None | Some(Value::Null | Value::Bool(false)) => {}
            Some(_) => {
                return Err(OllamaError::bad(
                    "think is not supported: nova's models do not think separately from their \
                     answer",
                ))
            }
        }
        if self.logprobs == Some(true) || self.top_logprobs.is_some_and(|n| n > 0) {
            return Err(OllamaError::bad("logprobs and top_logprobs are not supported"));
        }
        Ok(())
    }
}

/// A list field that must be empty: `images`, `tools`, `tool_calls`, `context`. Its items are
/// counted, never kept.
pub(super) fn must_be_empty(list: &Option<Vec<IgnoredAny>>, why: &str) -> Result<(), OllamaError> {
    match list {
        Some(items) if !items.is_empty() => Err(OllamaError::bad(why.to_string())),
        _ => Ok(()),
    }
}

/// A client's string quoted back at most this long, so an error never echoes a megabyte.
fn truncated(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
