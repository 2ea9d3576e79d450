//! `POST /v1/embeddings`: one L2-normalised vector per input, every input of a request
//! embedded by the same model on one worker, whose name the answer carries.
//!
//! Bounds: at most [`MAX_EMBED_INPUTS`] inputs (a longer list is counted, not stored, while it
//! is parsed, so 300,000 tiny inputs cost one pass over the body), each non-empty and at most
//! the prompt limit, [`nova_proto::embed::MAX_EMBED_BYTES`] together; an input longer than the
//! model's window in tokens is refused by the worker, by index, with a 400.

use std::fmt;

use axum::{
    extract::State,
    response::{IntoResponse, Response},
    Json,
};
use nova_proto::{
    embed::{encode_f32le, MAX_EMBED_INPUTS, MAX_EMBED_MODEL_BYTES},
    EmbedRequest,
};
use serde::{
    de::{self, IgnoredAny, SeqAccess, Visitor},
    Deserialize, Deserializer, Serialize,
};

use crate::{
    body::JsonBody,
    openai::chat::{task_id, DEADLINE},
    ApiError, AppState, Attempt, EmbedJob, EmbedResult, InferError,
};

/// The request body. Fields OpenAI has and nova does not use (`user`) are ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct EmbeddingsRequest {
    input: Input,
    model: Option<String>,
    encoding_format: Option<String>,
    dimensions: Option<u64>,
}

/// `input` as parsed: the texts, or what was wrong with it, found without storing more than
/// [`MAX_EMBED_INPUTS`] texts.
#[derive(Debug, PartialEq)]
enum Input {
    Texts(Vec<String>),
    /// More items than the bound: how many.
    TooMany(usize),
    /// Token ids (integers, or lists of them), which nova does not take.
    TokenIds,
}

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(InputVisitor)
    }
}

struct InputVisitor;

impl<'de> Visitor<'de> for InputVisitor {
    type Value = Input;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a list of strings")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Input, E> {
        Ok(Input::Texts(vec![v.to_owned()]))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Input, E> {
        Ok(Input::Texts(vec![v]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Input, A::Error> {
        let mut texts = Vec::new();
        let mut tokens = false;
        let mut n = 0usize;
        // Past the bound, items are only counted: nothing more is allocated.
        while n < MAX_EMBED_INPUTS {
            match seq.next_element::<Item>()? {
                None => break,
                Some(Item::Text(t)) => texts.push(t),
                Some(Item::Tokens) => tokens = true,
            }
            n += 1;
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(if tokens {
            Input::TokenIds
        } else if n > MAX_EMBED_INPUTS {
            Input::TooMany(n)
        } else {
            Input::Texts(texts)
        })
    }
}

/// One item of an `input` list.
enum Item {
    Text(String),
    /// A token id, or a list of them.
    Tokens,
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = Item;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Item, E> {
                Ok(Item::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Item, E> {
                Ok(Item::Text(v))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Item, E> {
                Ok(Item::Tokens)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Item, E> {
                Ok(Item::Tokens)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Item, E> {
                Ok(Item::Tokens)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Item::Tokens)
            }
        }
        d.deserialize_any(ItemVisitor)
    }
}

/// A refusal of this endpoint: 400, OpenAI's `invalid_request_error`, nova's `code`.
fn refuse(code: &'static str, message: String) -> ApiError {
    InferError::Rejected { code, message }.into()
}

/// The start of a client's value, for a message that names it without echoing all of it.
fn quoted(v: &str) -> String {
    let mut s: String = v.chars().take(32).collect();
    if s.len() < v.len() {
        s.push('…');
    }
    format!("{s:?}")
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Encoding {
    Float,
    Base64,
}

/// The response body, serialised straight from the vectors: `f32`s print in their shortest
/// form, not widened to `f64`.
#[derive(Serialize)]
struct Body<'a> {
    object: &'static str,
    data: Vec<Datum<'a>>,
    model: &'a str,
    usage: Usage,
    nova: Nova<'a>,
}

#[derive(Serialize)]
struct Datum<'a> {
    object: &'static str,
    index: usize,
    embedding: Vector<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector<'a> {
    Floats(&'a [f32]),
    Base64(String),
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u32,
    total_tokens: u32,
}

/// nova's extension: who computed the vectors.
#[derive(Serialize)]
struct Nova<'a> {
    worker: &'a str,
    dimensions: usize,
    latency_ms: f64,
    attempts: &'a [Attempt],
}

pub(crate) async fn handle(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<EmbeddingsRequest>,
) -> Result<Response, ApiError> {
    let texts =
        match req.input {
            Input::Texts(t) => t,
            Input::TooMany(n) => {
                let e = nova_proto::EmbedInputError::TooMany { n, max: MAX_EMBED_INPUTS };
                return Err(refuse(e.kind(), e.to_string()));
            }
            Input::TokenIds => return Err(refuse(
                "unsupported_input",
                "input as token ids is not supported by nova: send text, a string or a list of \
                 strings"
                    .into(),
            )),
        };
    let encoding = match req.encoding_format.as_deref() {
        None | Some("float") => Encoding::Float,
        Some("base64") => Encoding::Base64,
        Some(other) => {
            return Err(refuse(
                "invalid_encoding_format",
                format!("encoding_format {} is not \"float\" or \"base64\"", quoted(other)),
            ))
        }
    };
    if req.dimensions == Some(0) {
        return Err(refuse("invalid_dimensions", "dimensions must be positive".into()));
    }
    let model = req.model.filter(|m| m != "nova" && !m.is_empty());
    if let Some(m) = &model {
        if m.len() > MAX_EMBED_MODEL_BYTES {
            return Err(refuse(
                "invalid_model",
                format!("the model name is {} bytes; at most {MAX_EMBED_MODEL_BYTES}", m.len()),
            ));
        }
    }
    let request = EmbedRequest::new(task_id(), texts, &state.limits)
        .map_err(|e| refuse(e.kind(), e.to_string()))?;
    let result = state.inference.embed(EmbedJob { request, model, deadline: DEADLINE }).await?;
    let width = result.embeddings.width();
    if let Some(d) = req.dimensions.filter(|d| *d != width as u64) {
        // Vectors are not cut short (a decoder's hidden state is not ordered by importance,
        // unlike Matryoshka-trained embeddings): the client must take the native width.
        return Err(refuse(
            "invalid_dimensions",
            format!(
                "dimensions {d} is not supported: {} gives {width}-dimensional vectors; omit \
                 dimensions or send {width}",
                result.embeddings.model
            ),
        ));
    }
    Ok(Json(body(&result, encoding)).into_response())
}

fn body(r: &EmbedResult, encoding: Encoding) -> Body<'_> {
    let e = &r.embeddings;
    Body {
        object: "list",
        data: e
            .vectors
            .iter()
            .enumerate()
            .map(|(index, v)| Datum {
                object: "embedding",
                index,
                embedding: match encoding {
                    Encoding::Float => Vector::Floats(v),
                    Encoding::Base64 => Vector::Base64(encode_f32le(v)),
                },
            })
            .collect(),
        model: &e.model,
        usage: Usage { prompt_tokens: e.prompt_tokens, total_tokens: e.prompt_tokens },
        nova: Nova {
            worker: &r.worker,
            dimensions: e.width(),
            latency_ms: r.latency_ms,
            attempts: &r.attempts,
        },
    }
}

#[cfg(test)]
mod tests;
