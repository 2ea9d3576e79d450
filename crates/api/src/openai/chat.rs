//! `POST /v1/chat/completions`, whole or streamed as server-sent events.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::{
    extract::State,
    response::{IntoResponse, Response},
    Json,
};
use nova_proto::{
    normalize_tags, ChatMessage, Limits, Prompt, SamplingParams, Strategy, TaskId, ValidRequest,
    ValidationError,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::choices;
use crate::{body::JsonBody, ApiError, AppState, InferError, Job, JobEvent, JobEvents, JobResult};

/// Default deadline of a job.
pub(crate) const DEADLINE: Duration = Duration::from_secs(120);

/// `stop` may be one string or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Stop {
    One(String),
    Many(Vec<String>),
}

/// nova's extension object: routing options OpenAI clients can pass in `extra_body`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NovaOptions {
    pub(crate) strategy: Option<Strategy>,
    pub(crate) fanout: Option<usize>,
    #[serde(default, deserialize_with = "nova_proto::deserialize_tags")]
    pub(crate) tags: Vec<String>,
    #[serde(default)]
    pub(crate) debug: bool,
    /// Answer from the documents nodes share, citing them in `nova.sources`.
    #[serde(default)]
    pub(crate) rag: bool,
}

impl NovaOptions {
    /// The swarm job for `request`: tags normalised, the strategy defaulted, the fanout
    /// clamped to what a swarm can use. Every API that takes nova's options goes through here,
    /// so they route alike.
    pub(crate) fn job(
        self,
        request: ValidRequest,
        model: Option<String>,
        stream: bool,
        limits: &Limits,
    ) -> Result<Job, ValidationError> {
        Ok(Job {
            request,
            model,
            strategy: crate::strategy_or_default(self.strategy, self.fanout),
            fanout: self.fanout.unwrap_or(2).clamp(1, 16),
            tags: normalize_tags(&self.tags, limits)?,
            debug: self.debug,
            stream,
            deadline: DEADLINE,
            rag: self.rag,
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    pub(crate) include_usage: bool,
}

/// Most content parts in one message.
const MAX_PARTS: usize = 256;

/// A message as OpenAI clients send it: its content a string or a list of parts.
#[derive(Debug, Deserialize)]
pub(crate) struct OpenAiMessage {
    role: nova_proto::Role,
    content: Content,
    /// An assistant's tool calls: refused with the other tool fields.
    tool_calls: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

/// The conversation as nova's messages: text parts joined by newlines; anything but text
/// (images, audio, files, tool calls) refused, since the models read text only.
fn messages(given: Vec<OpenAiMessage>) -> Result<Vec<ChatMessage>, ApiError> {
    given
        .into_iter()
        .map(|m| {
            if m.tool_calls.as_ref().is_some_and(|t| !t.is_null()) {
                return Err(ApiError::BadRequest("tool calls are not supported".into()));
            }
            let content = match m.content {
                Content::Text(t) => t,
                Content::Parts(parts) => {
                    if parts.len() > MAX_PARTS {
                        return Err(ApiError::BadRequest(format!(
                            "a message has {} content parts; at most {MAX_PARTS}",
                            parts.len()
                        )));
                    }
                    let mut text = Vec::with_capacity(parts.len());
                    for p in parts {
                        match (p.kind.as_str(), p.text) {
                            ("text", Some(t)) => text.push(t),
                            ("text", None) => {
                                return Err(ApiError::BadRequest("a text part has no text".into()))
                            }
                            (other, _) => {
                                return Err(ApiError::BadRequest(format!(
                                    "content parts of type {:?} are not supported: the models read text only",
                                    other.chars().take(32).collect::<String>()
                                )))
                            }
                        }
                    }
                    text.join("\n")
                }
            };
            Ok(ChatMessage { role: m.role, content })
        })
        .collect()
}

/// OpenAI features nova does not have, refused by name instead of silently ignored.
fn refuse_unsupported(r: &ChatRequest) -> Result<(), ApiError> {
    let present = |v: &Option<Value>| match v {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    };
    let named = [
        ("tools", &r.tools),
        ("tool_choice", &r.tool_choice),
        ("functions", &r.functions),
        ("function_call", &r.function_call),
        ("top_logprobs", &r.top_logprobs),
        ("audio", &r.audio),
    ];
    if let Some((name, _)) = named.iter().find(|(_, v)| present(v)) {
        return Err(ApiError::BadRequest(format!("{name} is not supported by nova")));
    }
    if r.logprobs == Some(true) {
        return Err(ApiError::BadRequest("logprobs is not supported by nova".into()));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChatRequest {
    model: Option<String>,
    messages: Vec<OpenAiMessage>,
    tools: Option<Value>,
    tool_choice: Option<Value>,
    functions: Option<Value>,
    function_call: Option<Value>,
    response_format: Option<Value>,
    logprobs: Option<bool>,
    top_logprobs: Option<Value>,
    audio: Option<Value>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<u32>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    stop: Option<Stop>,
    seed: Option<u64>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    repeat_penalty: Option<f32>,
    /// llama.cpp server extension: generate exactly `max_tokens` (benchmarks).
    ignore_eos: Option<bool>,
    n: Option<u32>,
    nova: Option<NovaOptions>,
}

/// Fills sampling parameters from the OpenAI fields, defaults where absent.
pub(crate) fn sampling(r: &ChatRequest) -> Result<SamplingParams, ApiError> {
    let d = SamplingParams::default();
    let format = crate::format::openai(r.response_format.as_ref()).map_err(ApiError::BadRequest)?;
    Ok(SamplingParams {
        temperature: r.temperature.unwrap_or(d.temperature),
        top_p: r.top_p.unwrap_or(d.top_p),
        top_k: r.top_k.unwrap_or(d.top_k),
        seed: r.seed,
        max_tokens: r.max_completion_tokens.or(r.max_tokens).unwrap_or(d.max_tokens),
        stop: match &r.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        },
        repeat_penalty: r.repeat_penalty.unwrap_or(d.repeat_penalty),
        frequency_penalty: r.frequency_penalty.unwrap_or(d.frequency_penalty),
        presence_penalty: r.presence_penalty.unwrap_or(d.presence_penalty),
        ignore_eos: r.ignore_eos.unwrap_or(false),
        format,
    })
}

pub(crate) fn task_id() -> TaskId {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
    TaskId((t << 16) ^ NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

pub(crate) fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub(crate) async fn handle(
    State(state): State<AppState>,
    JsonBody(mut req): JsonBody<ChatRequest>,
) -> Result<Response, ApiError> {
    let n = choices::count(req.n)?;
    refuse_unsupported(&req)?;
    let params = sampling(&req)?;
    let conversation = messages(std::mem::take(&mut req.messages))?;
    let request = ValidRequest::new(task_id(), Prompt::Chat(conversation), params, &state.limits)?;
    let model = req.model.filter(|m| m != "nova" && !m.is_empty());
    let opts = req.nova.unwrap_or_default();
    let job = opts.job(request, model.clone(), req.stream, &state.limits)?;
    let rxs = choices::start(&state, choices::samples(&job, n)).await?;
    let shape = Chat {
        id: format!("chatcmpl-{:x}", task_id().0),
        model: model.unwrap_or_else(|| "nova".into()),
    };
    if req.stream {
        let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
        Ok(choices::sse(rxs, shape, include_usage, Vec::new()))
    } else {
        let results = choices::wait_all(rxs).await?;
        Ok(Json(shape.whole(&results)).into_response())
    }
}

/// Waits for a job's final event. Cancel-safe: dropping it drops the receiver, which cancels
/// the job.
pub(crate) async fn wait(mut rx: JobEvents) -> Result<JobResult, ApiError> {
    while let Some(ev) = rx.recv().await {
        match ev {
            JobEvent::Token(_) | JobEvent::Stage(_) | JobEvent::StageStarted(_) => {}
            JobEvent::Done(r) => return Ok(*r),
            JobEvent::Error(e) => return Err(e.into()),
        }
    }
    Err(InferError::Shutdown.into())
}

/// Chat's objects: `chat.completion` and its chunks.
struct Chat {
    id: String,
    model: String,
}

impl Chat {
    fn whole(&self, results: &[JobResult]) -> Value {
        choices::whole(
            "chat.completion",
            &self.id,
            &self.model,
            results,
            |_, r| json!({"message": {"role": "assistant", "content": r.text}}),
        )
    }

    fn chunk(&self, index: usize, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": now_s(),
            "model": self.model,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        })
    }
}

impl choices::Shape for Chat {
    fn opening(&self, index: usize) -> Option<Value> {
        Some(self.chunk(index, json!({"role": "assistant", "content": ""}), None))
    }

    fn text(&self, index: usize, text: &str) -> Value {
        self.chunk(index, json!({ "content": text }), None)
    }

    fn empty(&self, index: usize) -> Value {
        self.chunk(index, json!({}), None)
    }

    fn finish(&self, index: usize, reason: &str) -> Value {
        self.chunk(index, json!({}), Some(reason))
    }

    fn usage(&self, usage: Value) -> Value {
        let mut u = self.chunk(0, json!({}), None);
        u["choices"] = json!([]);
        u["usage"] = usage;
        u
    }
}
