//! `POST /v1/completions`: OpenAI's legacy text completion, whole or streamed. The prompt is
//! raw text the model continues (no chat template), as tools written for base models expect.

use axum::{
    extract::State,
    response::{IntoResponse, Response},
    Json,
};
use nova_proto::{Prompt, SamplingParams, ValidRequest};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    chat::{now_s, task_id, NovaOptions, Stop, StreamOptions},
    choices::{self, MAX_CHOICES},
};
use crate::{body::JsonBody, ApiError, AppState, JobResult};

/// OpenAI's default for this endpoint (chat's is nova's own, 256).
const DEFAULT_MAX_TOKENS: u32 = 16;

#[derive(Debug, Deserialize)]
pub(crate) struct CompletionRequest {
    model: Option<String>,
    /// A string or a list of strings; token ids are refused.
    prompt: Value,
    suffix: Option<String>,
    #[serde(default)]
    echo: bool,
    best_of: Option<u32>,
    logprobs: Option<Value>,
    logit_bias: Option<Value>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<u32>,
    max_tokens: Option<u32>,
    stop: Option<Stop>,
    seed: Option<u64>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    repeat_penalty: Option<f32>,
    ignore_eos: Option<bool>,
    /// llama.cpp's server takes a response format here too.
    response_format: Option<Value>,
    n: Option<u32>,
    nova: Option<NovaOptions>,
}

/// The prompts: one string, or a list of strings (each gets `n` choices).
fn prompts(v: Value) -> Result<Vec<String>, ApiError> {
    let tokens = || {
        ApiError::BadRequest(
            "prompt as token ids is not supported: nova's workers may run different models \
             with different vocabularies; send text"
                .into(),
        )
    };
    match v {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => {
            if items.is_empty() {
                return Err(ApiError::BadRequest("prompt is an empty list".into()));
            }
            if items.len() > MAX_CHOICES as usize {
                return Err(ApiError::BadRequest(format!(
                    "prompt lists {} prompts; at most {MAX_CHOICES}",
                    items.len()
                )));
            }
            items
                .into_iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s),
                    Value::Number(_) | Value::Array(_) => Err(tokens()),
                    _ => Err(ApiError::BadRequest("prompt must be text or a list of texts".into())),
                })
                .collect()
        }
        Value::Null => Err(ApiError::BadRequest("prompt is missing".into())),
        _ => Err(ApiError::BadRequest("prompt must be text or a list of texts".into())),
    }
}

/// OpenAI features of this endpoint nova does not have, refused by name.
fn refuse_unsupported(r: &CompletionRequest, n: u32) -> Result<(), ApiError> {
    let bad = |m: &str| Err(ApiError::BadRequest(m.into()));
    if r.suffix.as_ref().is_some_and(|s| !s.is_empty()) {
        return bad("suffix (fill in the middle) is not supported by nova");
    }
    if r.logprobs.as_ref().is_some_and(|l| !l.is_null() && l != &json!(0)) {
        return bad("logprobs is not supported by nova");
    }
    if r.logit_bias.as_ref().is_some_and(|b| b.as_object().is_none_or(|o| !o.is_empty())) {
        return bad("logit_bias is not supported by nova");
    }
    if r.best_of.is_some_and(|b| b != n) {
        return bad("best_of is not supported by nova; use nova.strategy \"best_of_n\"");
    }
    Ok(())
}

fn sampling(r: &CompletionRequest) -> Result<SamplingParams, ApiError> {
    let d = SamplingParams::default();
    let format = crate::format::openai(r.response_format.as_ref()).map_err(ApiError::BadRequest)?;
    Ok(SamplingParams {
        temperature: r.temperature.unwrap_or(d.temperature),
        top_p: r.top_p.unwrap_or(d.top_p),
        top_k: r.top_k.unwrap_or(d.top_k),
        seed: r.seed,
        max_tokens: r.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
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

pub(crate) async fn handle(
    State(state): State<AppState>,
    JsonBody(mut req): JsonBody<CompletionRequest>,
) -> Result<Response, ApiError> {
    let n = choices::count(req.n)?;
    refuse_unsupported(&req, n)?;
    let texts = prompts(std::mem::take(&mut req.prompt))?;
    if texts.len() as u32 * n > MAX_CHOICES {
        return Err(ApiError::BadRequest(format!(
            "{} prompts times n = {n} is {} choices; at most {MAX_CHOICES}",
            texts.len(),
            texts.len() as u32 * n
        )));
    }
    let params = sampling(&req)?;
    let model = req.model.filter(|m| m != "nova" && !m.is_empty());
    let opts = req.nova.unwrap_or_default();
    // Choice `p * n + j` is sample `j` of prompt `p`, as OpenAI orders them.
    let mut jobs = Vec::with_capacity(texts.len() * n as usize);
    for text in &texts {
        let request = ValidRequest::new(
            task_id(),
            Prompt::Text(text.clone()),
            params.clone(),
            &state.limits,
        )?;
        let job = opts.clone().job(request, model.clone(), req.stream, &state.limits)?;
        jobs.extend(choices::samples(&job, n));
    }
    let echoed: Vec<String> = match req.echo {
        true => texts.iter().flat_map(|t| std::iter::repeat_n(t.clone(), n as usize)).collect(),
        false => Vec::new(),
    };
    let rxs = choices::start(&state, jobs).await?;
    let shape = Completion {
        id: format!("cmpl-{:x}", task_id().0),
        model: model.unwrap_or_else(|| "nova".into()),
    };
    if req.stream {
        let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
        Ok(choices::sse(rxs, shape, include_usage, echoed))
    } else {
        let results = choices::wait_all(rxs).await?;
        Ok(Json(shape.whole(&results, &echoed)).into_response())
    }
}

/// The legacy objects: `text_completion`, whole and as chunks.
struct Completion {
    id: String,
    model: String,
}

impl Completion {
    fn whole(&self, results: &[JobResult], echoed: &[String]) -> Value {
        choices::whole("text_completion", &self.id, &self.model, results, |i, r| {
            let prefix = echoed.get(i).map_or("", String::as_str);
            json!({"text": format!("{prefix}{}", r.text), "logprobs": null})
        })
    }

    fn chunk(&self, index: usize, text: &str, finish: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "text_completion",
            "created": now_s(),
            "model": self.model,
            "choices": [{"index": index, "text": text, "logprobs": null, "finish_reason": finish}],
        })
    }
}

impl choices::Shape for Completion {
    fn opening(&self, _index: usize) -> Option<Value> {
        None
    }

    fn text(&self, index: usize, text: &str) -> Value {
        self.chunk(index, text, None)
    }

    fn empty(&self, index: usize) -> Value {
        self.chunk(index, "", None)
    }

    fn finish(&self, index: usize, reason: &str) -> Value {
        self.chunk(index, "", Some(reason))
    }

    fn usage(&self, usage: Value) -> Value {
        let mut u = self.chunk(0, "", None);
        u["choices"] = json!([]);
        u["usage"] = usage;
        u
    }
}
