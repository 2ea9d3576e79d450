//! Requests: the raw parameters a caller gives and the [`ValidRequest`] an engine accepts.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Identifies one generation task across the swarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskId(pub u64);

impl TaskId {
    /// A short form for logs.
    pub fn fmt_short(&self) -> String {
        format!("{:06x}", self.0 & 0xff_ffff)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the assistant.
    System,
    /// The person asking.
    User,
    /// The model's earlier answers.
    Assistant,
}

impl Role {
    /// The role's name as chat templates spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// What it says.
    pub content: String,
}

impl ChatMessage {
    /// A message from the user.
    pub fn user(content: impl Into<String>) -> Self {
        Self { role: Role::User, content: content.into() }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self { role: Role::System, content: content.into() }
    }
}

/// What the model is asked to continue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Prompt {
    /// A conversation, rendered with the model's own chat template. A model without a template
    /// (a base model) gets the messages' contents joined by blank lines.
    Chat(Vec<ChatMessage>),
    /// Raw text the model continues as is.
    Text(String),
}

impl Prompt {
    /// Total bytes of prompt text.
    pub fn text_len(&self) -> usize {
        match self {
            Self::Chat(m) => m.iter().map(|m| m.content.len()).sum(),
            Self::Text(t) => t.len(),
        }
    }
}

/// Sampling settings. Defaults suit small instruction models: mild temperature and a repeat
/// penalty, since models of this size loop under plain greedy decoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// 0 means greedy (always the most likely token).
    pub temperature: f32,
    /// Nucleus sampling mass in (0, 1]; 1 disables it.
    pub top_p: f32,
    /// Keep only the k most likely tokens; 0 disables it.
    pub top_k: u32,
    /// Seed of the sampler's RNG; `None` picks one at random.
    pub seed: Option<u64>,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Generation stops before the first occurrence of any of these strings.
    pub stop: Vec<String>,
    /// Multiplicative penalty on recently seen tokens; 1 disables it.
    pub repeat_penalty: f32,
    /// OpenAI-style frequency penalty in [-2, 2]; 0 disables it.
    pub frequency_penalty: f32,
    /// OpenAI-style presence penalty in [-2, 2]; 0 disables it.
    pub presence_penalty: f32,
    /// Keep generating past end-of-generation tokens, up to `max_tokens`. For benchmarks.
    pub ignore_eos: bool,
    /// Constrain the answer to JSON (`None`: free text). Engines enforce it while sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<crate::ResponseFormat>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_p: 0.95,
            top_k: 40,
            seed: None,
            max_tokens: 256,
            stop: Vec::new(),
            repeat_penalty: 1.1,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            ignore_eos: false,
            format: None,
        }
    }
}

/// Bounds a request must respect. Checked before anything reaches an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Most bytes of prompt text.
    pub max_prompt_bytes: usize,
    /// Most messages in a conversation.
    pub max_messages: usize,
    /// Largest `max_tokens` accepted.
    pub max_tokens: u32,
    /// Most stop strings, and most bytes in each.
    pub max_stop: usize,
    /// Most bytes in one stop string.
    pub max_stop_bytes: usize,
    /// Most routing tags on one request.
    pub max_tags: usize,
    /// Most bytes in one routing tag.
    pub max_tag_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_prompt_bytes: 64 * 1024,
            max_messages: 256,
            max_tokens: 4096,
            max_stop: 8,
            max_stop_bytes: 64,
            max_tags: 8,
            max_tag_bytes: 32,
        }
    }
}

/// Why a request was refused. Each message names the field and the bound.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The prompt or conversation has no text.
    #[error("the prompt is empty")]
    EmptyPrompt,
    /// The prompt is longer than the limit.
    #[error("the prompt is {len} bytes; the limit is {max}")]
    PromptTooLong {
        /// Bytes given.
        len: usize,
        /// Bytes allowed.
        max: usize,
    },
    /// Too many messages.
    #[error("the conversation has {len} messages; the limit is {max}")]
    TooManyMessages {
        /// Messages given.
        len: usize,
        /// Messages allowed.
        max: usize,
    },
    /// A numeric parameter is out of its range.
    #[error("{field} must be {range}, got {value}")]
    OutOfRange {
        /// The parameter's name.
        field: &'static str,
        /// The allowed range, in words.
        range: &'static str,
        /// The value given.
        value: String,
    },
    /// Too many or too long stop strings.
    #[error("stop: at most {max} strings of 1 to {max_bytes} bytes each")]
    BadStop {
        /// Strings allowed.
        max: usize,
        /// Bytes allowed per string.
        max_bytes: usize,
    },
    /// Too many, too long or malformed routing tags.
    #[error(
        "tags: at most {max} tags of 1 to {max_bytes} characters each (letters, digits, - _ . : /); {detail}"
    )]
    BadTags {
        /// Tags allowed.
        max: usize,
        /// Bytes allowed per tag.
        max_bytes: usize,
        /// What was wrong, in words.
        detail: String,
    },
    /// Too many or too long context passages.
    #[error("context: at most {max} passages of at most {max_bytes} bytes each")]
    BadContext {
        /// Passages allowed.
        max: usize,
        /// Bytes allowed per passage.
        max_bytes: usize,
    },
    /// A response format that cannot be enforced.
    #[error("{detail}")]
    BadFormat {
        /// What was wrong, in words.
        detail: String,
    },
    /// Text contains a NUL character, which no model's tokenizer accepts.
    #[error("{field} contains a NUL character (\\u0000)")]
    NulCharacter {
        /// Where it was found.
        field: &'static str,
    },
}

impl ValidationError {
    /// A stable name for metrics and API error bodies.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::EmptyPrompt => "empty_prompt",
            Self::PromptTooLong { .. } => "prompt_too_long",
            Self::TooManyMessages { .. } => "too_many_messages",
            Self::OutOfRange { .. } => "out_of_range",
            Self::BadStop { .. } => "bad_stop",
            Self::BadTags { .. } => "bad_tags",
            Self::BadContext { .. } => "bad_context",
            Self::BadFormat { .. } => "bad_format",
            Self::NulCharacter { .. } => "nul_character",
        }
    }
}

/// Where a generation picks up when it continues another worker's answer: the text already
/// sent to the client. The engine evaluates the prompt followed by this text (as the start of
/// its own answer) and generates what comes next, so with greedy decoding the continuation is
/// the text the first worker would have produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The answer so far, exactly as the client received it.
    pub text: String,
}

/// A request that passed validation: an engine may run it without further checks. A node that
/// receives one over the wire checks it again against its own [`Limits`] with
/// [`ValidRequest::check`], since a peer can send any bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidRequest {
    /// The task this request belongs to.
    pub id: TaskId,
    /// What to continue.
    pub prompt: Prompt,
    /// How to sample.
    pub params: SamplingParams,
    /// Continue an answer another worker started (`None`: answer from the start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
    /// Passages of shared documents to answer from, best first. The engine puts as many as
    /// its context window holds in front of the prompt ([`ValidRequest::fit_context`]) and
    /// reports how many in [`crate::Usage::context_used`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<Passage>,
}

/// A passage of a shared document, for a grounded answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passage {
    /// Where it comes from, as the model and the user see it (`node: path`).
    pub source: String,
    /// The passage.
    pub text: String,
}

/// Most bytes of a passage's source label.
const MAX_PASSAGE_SOURCE_BYTES: usize = 640;

/// What a grounded prompt tells the model before the passages.
const GROUNDING: &str = "Answer the question using the numbered sources below. \
Cite the sources you use like [1]. If the sources do not contain the answer, say so.";

impl ValidRequest {
    /// Checks `prompt` and `params` against `limits`.
    pub fn new(
        id: TaskId,
        prompt: Prompt,
        params: SamplingParams,
        limits: &Limits,
    ) -> Result<Self, ValidationError> {
        let req = Self { id, prompt, params, resume: None, context: Vec::new() };
        req.check(limits)?;
        Ok(req)
    }

    /// The same request, continuing after `text` (see [`Resume`]).
    pub fn resumed(&self, id: TaskId, text: String) -> Self {
        Self { id, resume: Some(Resume { text }), ..self.clone() }
    }

    /// The `i`-th of several samples of this request: its own task id and, when the request
    /// fixes a seed, its own seed, so samples differ yet stay reproducible. Sample 0 is the
    /// request itself.
    pub fn sample(&self, i: u64) -> Self {
        if i == 0 {
            return self.clone();
        }
        let mut s = self.clone();
        s.id = TaskId(self.id.0.wrapping_add(i.wrapping_mul(0x9E37_79B9)));
        s.params.seed = self.params.seed.map(|seed| seed.wrapping_add(i));
        s
    }

    /// The prompt with the first `n` passages of [`Self::context`] in front of it: in the
    /// system message of a conversation (merged with the caller's own, since some chat
    /// templates take one system message only), or above a raw text.
    pub fn grounded_prompt(&self, n: usize) -> Prompt {
        let n = n.min(self.context.len());
        if n == 0 {
            return self.prompt.clone();
        }
        let mut sources = String::from(GROUNDING);
        for (i, p) in self.context[..n].iter().enumerate() {
            sources.push_str(&format!("\n\n[{}] {}\n{}", i + 1, p.source, p.text.trim()));
        }
        match &self.prompt {
            Prompt::Chat(messages) => {
                let mut out = Vec::with_capacity(messages.len() + 1);
                match messages.first() {
                    Some(m) if m.role == Role::System => {
                        out.push(ChatMessage::system(format!("{}\n\n{sources}", m.content)));
                        out.extend(messages[1..].iter().cloned());
                    }
                    _ => {
                        out.push(ChatMessage::system(sources));
                        out.extend(messages.iter().cloned());
                    }
                }
                Prompt::Chat(out)
            }
            Prompt::Text(t) => Prompt::Text(format!("{sources}\n\n{t}")),
        }
    }

    /// The grounded prompt with as many passages as fit in a window of `n_ctx` tokens while
    /// leaving room for the answer (`max_tokens`, but at most a quarter of the window), and
    /// how many that is. `count` gives a prompt's length in tokens as the model will see it
    /// (`None`: it cannot be rendered, so no passages are added). Passages are dropped from
    /// the end, the least relevant first.
    pub fn fit_context(
        &self,
        n_ctx: usize,
        mut count: impl FnMut(&Prompt) -> Option<usize>,
    ) -> (Prompt, usize) {
        let reserve = (self.params.max_tokens as usize).min(n_ctx / 4);
        let resumed = self.resume.as_ref().map_or(0, |r| r.text.len() / 2);
        for n in (1..=self.context.len()).rev() {
            let p = self.grounded_prompt(n);
            match count(&p) {
                Some(t) if t + reserve + resumed <= n_ctx => return (p, n),
                Some(_) => {}
                None => break,
            }
        }
        (self.prompt.clone(), 0)
    }

    /// Checks every field against `limits`: what [`Self::new`] does, for a request that came
    /// from elsewhere (a peer, a file).
    pub fn check(&self, limits: &Limits) -> Result<(), ValidationError> {
        let (prompt, params) = (&self.prompt, &self.params);
        if let Prompt::Chat(messages) = prompt {
            if messages.len() > limits.max_messages {
                return Err(ValidationError::TooManyMessages {
                    len: messages.len(),
                    max: limits.max_messages,
                });
            }
        }
        let len = prompt.text_len();
        if len == 0 {
            return Err(ValidationError::EmptyPrompt);
        }
        let resumed = self.resume.as_ref().map_or(0, |r| r.text.len());
        if len.saturating_add(resumed) > limits.max_prompt_bytes {
            return Err(ValidationError::PromptTooLong {
                len: len.saturating_add(resumed),
                max: limits.max_prompt_bytes,
            });
        }
        if self.context.len() > crate::knowledge::MAX_HITS
            || self.context.iter().any(|p| {
                p.text.len() > crate::knowledge::MAX_SNIPPET_BYTES
                    || p.source.len() > MAX_PASSAGE_SOURCE_BYTES
            })
        {
            return Err(ValidationError::BadContext {
                max: crate::knowledge::MAX_HITS,
                max_bytes: crate::knowledge::MAX_SNIPPET_BYTES,
            });
        }
        let has_nul = match prompt {
            Prompt::Chat(m) => m.iter().any(|m| m.content.contains('\0')),
            Prompt::Text(t) => t.contains('\0'),
        };
        let context_nul =
            self.context.iter().any(|p| p.text.contains('\0') || p.source.contains('\0'));
        if has_nul || context_nul || self.resume.as_ref().is_some_and(|r| r.text.contains('\0')) {
            return Err(ValidationError::NulCharacter { field: "the prompt" });
        }
        check_range("temperature", "between 0 and 2", params.temperature, 0.0, 2.0)?;
        check_range("top_p", "in (0, 1]", params.top_p, f32::MIN_POSITIVE, 1.0)?;
        check_range("repeat_penalty", "between 0.5 and 2", params.repeat_penalty, 0.5, 2.0)?;
        check_range("frequency_penalty", "between -2 and 2", params.frequency_penalty, -2.0, 2.0)?;
        check_range("presence_penalty", "between -2 and 2", params.presence_penalty, -2.0, 2.0)?;
        if params.top_k > 1000 {
            return Err(out_of_range("top_k", "at most 1000", params.top_k));
        }
        if params.max_tokens == 0 || params.max_tokens > limits.max_tokens {
            let range = "between 1 and the node's limit (default 4096)";
            return Err(out_of_range("max_tokens", range, params.max_tokens));
        }
        if params.stop.len() > limits.max_stop
            || params.stop.iter().any(|s| s.is_empty() || s.len() > limits.max_stop_bytes)
        {
            return Err(ValidationError::BadStop {
                max: limits.max_stop,
                max_bytes: limits.max_stop_bytes,
            });
        }
        if params.stop.iter().any(|s| s.contains('\0')) {
            return Err(ValidationError::NulCharacter { field: "a stop string" });
        }
        if let Some(f) = &params.format {
            crate::format::check(f, params.ignore_eos)?;
        }
        Ok(())
    }
}

fn out_of_range(field: &'static str, range: &'static str, v: impl ToString) -> ValidationError {
    ValidationError::OutOfRange { field, range, value: v.to_string() }
}

fn check_range(
    field: &'static str,
    range: &'static str,
    v: f32,
    lo: f32,
    hi: f32,
) -> Result<(), ValidationError> {
    // NaN fails both comparisons, so it is refused too.
    if v >= lo && v <= hi {
        Ok(())
    } else {
        Err(out_of_range(field, range, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(s: &str) -> Prompt {
        Prompt::Chat(vec![ChatMessage::user(s)])
    }

    fn valid(p: Prompt, params: SamplingParams) -> Result<ValidRequest, ValidationError> {
        ValidRequest::new(TaskId(1), p, params, &Limits::default())
    }

    fn with_context(n: usize) -> ValidRequest {
        let mut r = valid(chat("Who owns ZX-81?"), SamplingParams::default()).unwrap();
        r.context = (0..n)
            .map(|i| Passage { source: format!("b: notes/{i}.md"), text: format!("passage {i}") })
            .collect();
        r
    }

    #[test]
    fn grounding_numbers_the_passages_in_one_system_message() {
        let r = with_context(2);
        let Prompt::Chat(m) = r.grounded_prompt(2) else { panic!("a chat stays a chat") };
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].role, Role::System);
        assert!(m[0].content.contains("[1] b: notes/0.md\npassage 0"));
        assert!(m[0].content.contains("[2] b: notes/1.md\npassage 1"));
        // The caller's own system message is kept, with the sources after it.
        let mut r = with_context(1);
        r.prompt = Prompt::Chat(vec![ChatMessage::system("Be brief."), ChatMessage::user("q")]);
        let Prompt::Chat(m) = r.grounded_prompt(1) else { panic!() };
        assert_eq!(m.len(), 2);
        assert!(m[0].content.starts_with("Be brief.") && m[0].content.contains("[1]"));
        assert_eq!(r.grounded_prompt(0), r.prompt);
    }

    #[test]
    fn fitting_drops_the_least_relevant_passages_first() {
        let mut r = with_context(5);
        // Room for the answer: max_tokens, here smaller than a quarter of the window.
        r.params.max_tokens = 16;
        let count = |p: &Prompt| Some(p.text_len());
        let (_, used) = r.fit_context(r.grounded_prompt(5).text_len() + 16, count);
        assert_eq!(used, 5);
        let (p, used) = r.fit_context(r.grounded_prompt(3).text_len() + 16, count);
        assert_eq!(used, 3);
        assert_eq!(p, r.grounded_prompt(3));
        // Nothing fits, or the prompt cannot be counted: the plain prompt.
        assert_eq!(r.fit_context(10, count), (r.prompt.clone(), 0));
        assert_eq!(r.fit_context(1 << 20, |_| None), (r.prompt.clone(), 0));
    }

    #[test]
    fn context_is_bounded_like_the_rest_of_the_request() {
        let mut r = with_context(crate::knowledge::MAX_HITS + 1);
        assert_eq!(r.check(&Limits::default()).unwrap_err().kind(), "bad_context");
        r = with_context(1);
        r.context[0].text = "x".repeat(crate::knowledge::MAX_SNIPPET_BYTES + 1);
        assert_eq!(r.check(&Limits::default()).unwrap_err().kind(), "bad_context");
        r.context[0].text = "a\0b".into();
        assert_eq!(r.check(&Limits::default()).unwrap_err().kind(), "nul_character");
    }

    #[test]
    fn accepts_defaults() {
        assert!(valid(chat("hi"), SamplingParams::default()).is_ok());
    }

    #[test]
    fn refuses_empty_and_oversized_prompts() {
        assert_eq!(valid(chat(""), SamplingParams::default()), Err(ValidationError::EmptyPrompt));
        let big = "x".repeat(Limits::default().max_prompt_bytes + 1);
        let err = valid(Prompt::Text(big), SamplingParams::default()).unwrap_err();
        assert_eq!(err.kind(), "prompt_too_long");
        assert!(err.to_string().contains("65537 bytes"), "{err}");
    }

    #[test]
    fn refuses_out_of_range_and_nan() {
        for params in [
            SamplingParams { temperature: f32::NAN, ..Default::default() },
            SamplingParams { temperature: 3.0, ..Default::default() },
            SamplingParams { top_p: 0.0, ..Default::default() },
            SamplingParams { max_tokens: 0, ..Default::default() },
            SamplingParams { max_tokens: 1_000_000, ..Default::default() },
            SamplingParams { top_k: 5000, ..Default::default() },
        ] {
            let err = valid(chat("hi"), params.clone()).unwrap_err();
            assert_eq!(err.kind(), "out_of_range", "{params:?}");
        }
    }

    #[test]
    fn refuses_bad_stop_strings() {
        let params = SamplingParams { stop: vec![String::new()], ..Default::default() };
        assert_eq!(valid(chat("hi"), params).unwrap_err().kind(), "bad_stop");
    }

    #[test]
    fn refuses_nul_characters() {
        let err = valid(chat("a\0b"), SamplingParams::default()).unwrap_err();
        assert_eq!(err.kind(), "nul_character");
        let params = SamplingParams { stop: vec!["\0".into()], ..Default::default() };
        assert_eq!(valid(chat("hi"), params).unwrap_err().kind(), "nul_character");
    }

    #[test]
    fn a_request_from_the_wire_is_checked_again() {
        let mut req = valid(chat("hi"), SamplingParams::default()).unwrap();
        req.params.max_tokens = 1_000_000;
        assert_eq!(req.check(&Limits::default()).unwrap_err().kind(), "out_of_range");
        let long = req.resumed(TaskId(2), "x".repeat(Limits::default().max_prompt_bytes));
        assert_eq!(long.check(&Limits::default()).unwrap_err().kind(), "prompt_too_long");
    }

    #[test]
    fn sampling_params_fill_defaults_from_partial_json() -> Result<(), serde_json::Error> {
        let p: SamplingParams = serde_json::from_str(r#"{"temperature":0}"#)?;
        assert_eq!(p.temperature, 0.0);
        assert_eq!(p.max_tokens, SamplingParams::default().max_tokens);
        Ok(())
    }
}
