//! Embeddings from the upstream server's `/v1/embeddings` (llama-server started with
//! `--embeddings`, Ollama, any OpenAI-compatible server).

use nova_proto::{
    embed::{decode_f32le, MAX_EMBED_DIM},
    EmbedRequest, Embeddings,
};
use serde::Deserialize;
use serde_json::json;

use super::{upstream_message, OpenAiHttpConfig};
use crate::EngineError;

/// Most bytes of an upstream answer read: every vector at the widest accepted, as JSON numbers
/// of up to 24 characters, plus room for the envelope.
fn max_reply_bytes(inputs: usize) -> usize {
    inputs * MAX_EMBED_DIM * 24 + (1 << 20)
}

#[derive(Deserialize)]
struct Reply {
    data: Vec<Item>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Item {
    index: usize,
    embedding: Vector,
}

/// As numbers, or as base64 when a server sends that unasked.
#[derive(Deserialize)]
#[serde(untagged)]
enum Vector {
    Floats(Vec<f32>),
    Base64(String),
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: u32,
}

/// Asks the upstream server for `req`'s vectors. Cancel-safe: dropping the future drops the
/// connection.
pub(super) async fn call(
    client: &reqwest::Client,
    config: &OpenAiHttpConfig,
    req: EmbedRequest,
) -> Result<Embeddings, EngineError> {
    let url = format!("{}/v1/embeddings", config.base_url);
    let n = req.inputs.len();
    let body = json!({"model": config.model, "input": req.inputs, "encoding_format": "float"});
    let mut request = client.post(&url).json(&body);
    if let Some(key) = &config.api_key {
        request = request.bearer_auth(key);
    }
    let silent = || EngineError::Unavailable(format!("{url} did not answer in time"));
    let mut resp = tokio::time::timeout(config.idle_timeout, request.send())
        .await
        .map_err(|_| silent())?
        .map_err(|e| EngineError::Unavailable(format!("{url}: {e}")))?;
    let status = resp.status();
    let mut bytes = Vec::new();
    let max = max_reply_bytes(n);
    loop {
        let chunk = tokio::time::timeout(config.idle_timeout, resp.chunk())
            .await
            .map_err(|_| silent())?
            .map_err(|e| EngineError::Unavailable(format!("reading {url}: {e}")))?;
        let Some(chunk) = chunk else { break };
        if bytes.len() + chunk.len() > max {
            return Err(EngineError::Upstream {
                status: Some(status.as_u16()),
                message: format!("the answer exceeds {max} bytes"),
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        let message = upstream_message(&String::from_utf8_lossy(&bytes));
        // llama-server without `--embeddings` says 501; a server without the route says 404.
        if matches!(status.as_u16(), 404 | 501) {
            return Err(EngineError::Unsupported(format!(
                "the upstream server at {} does not serve embeddings (HTTP {status}: {message})",
                config.base_url
            )));
        }
        return Err(EngineError::Upstream { status: Some(status.as_u16()), message });
    }
    let malformed = |why: String| EngineError::Upstream {
        status: Some(status.as_u16()),
        message: format!("malformed embeddings: {why}"),
    };
    let reply: Reply = serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))?;
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; n];
    for item in reply.data {
        let slot = vectors
            .get_mut(item.index)
            .ok_or_else(|| malformed(format!("index {} for {n} inputs", item.index)))?;
        if slot.is_some() {
            return Err(malformed(format!("index {} twice", item.index)));
        }
        *slot = Some(match item.embedding {
            Vector::Floats(v) => v,
            Vector::Base64(s) => {
                decode_f32le(&s, MAX_EMBED_DIM).map_err(|e| malformed(e.to_string()))?
            }
        });
    }
    let vectors = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| v.ok_or_else(|| malformed(format!("no vector for input {i}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Embeddings {
        // The name the swarm knows the model by, whatever the server calls it.
        model: config.model.clone(),
        vectors,
        prompt_tokens: reply.usage.map_or(0, |u| u.prompt_tokens),
    }
    .checked(n)
    .map_err(malformed)
}
