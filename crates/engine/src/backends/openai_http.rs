//! Forwards requests to an OpenAI-compatible server (llama.cpp's `llama-server`, Ollama, …) and
//! streams its server-sent events back as [`TokenEvent`]s, so a node can front an engine it does
//! not embed.

mod embed;
pub(crate) mod sse;

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;
use nova_proto::{EmbedRequest, Prompt, TokenEvent, ValidRequest};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::{EmbedReply, Engine, EngineError, EngineInfo, Health, TokenStream};

/// Settings of an [`OpenAiHttpEngine`].
#[derive(Debug, Clone)]
pub struct OpenAiHttpConfig {
    /// Server root, e.g. `http://127.0.0.1:8080` (the `/v1/...` paths are appended).
    pub base_url: String,
    /// Model name sent upstream.
    pub model: String,
    /// Bearer token for the upstream server, if it wants one.
    pub api_key: Option<String>,
    /// Most requests forwarded at once; more are refused with `QueueFull`.
    pub max_concurrent: usize,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Longest silence allowed between two events of a stream.
    pub idle_timeout: Duration,
}

impl OpenAiHttpConfig {
    /// Defaults: 4 concurrent requests, 5 s to connect, 120 s of silence at most. A base URL
    /// ending in `/v1` (as OpenAI clients take it) is the same server.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        let base_url = base_url.into();
        let base_url = base_url.trim_end_matches('/');
        Self {
            base_url: base_url.strip_suffix("/v1").unwrap_or(base_url).to_string(),
            model: model.into(),
            api_key: None,
            max_concurrent: 4,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// An engine that lives behind HTTP.
#[derive(Debug)]
pub struct OpenAiHttpEngine {
    info: EngineInfo,
    config: OpenAiHttpConfig,
    client: reqwest::Client,
    slots: Arc<Semaphore>,
}

impl OpenAiHttpEngine {
    /// Builds the client. Does not contact the server.
    pub fn new(config: OpenAiHttpConfig) -> Result<Self, EngineError> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| EngineError::Unavailable(format!("cannot build an HTTP client: {e}")))?;
        let cap = config.max_concurrent.max(1);
        Ok(Self {
            info: EngineInfo {
                backend: "openai_http",
                model: config.model.clone(),
                architecture: None,
                n_ctx: None,
                n_embd: None,
                threads: None,
                slots: 1,
                queue_capacity: cap,
                kv_cache_bytes: None,
            },
            slots: Arc::new(Semaphore::new(cap)),
            config,
            client,
        })
    }

    /// The runtime to run a call on and its place among the calls in flight: generations and
    /// embeddings share the one bound.
    fn admit(&self) -> Result<(tokio::runtime::Handle, OwnedSemaphorePermit), EngineError> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| {
            EngineError::Unavailable("the openai_http engine needs a tokio runtime".into())
        })?;
        let permit = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| EngineError::QueueFull { capacity: self.info.queue_capacity })?;
        Ok((rt, permit))
    }
}

impl Engine for OpenAiHttpEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn submit(&self, req: ValidRequest) -> Result<TokenStream, EngineError> {
        let (rt, permit) = self.admit()?;
        let (tx, rx) = mpsc::channel(32);
        let mut req = req;
        let context_used = crate::ground_by_estimate(&mut req, self.info.n_ctx);
        let call =
            Call { client: self.client.clone(), config: self.config.clone(), req, context_used };
        rt.spawn(call.run(tx, permit));
        Ok(rx)
    }

    /// Forwarded to the upstream server's `/v1/embeddings`, sharing the concurrency bound
    /// with generations.
    fn embed(&self, req: EmbedRequest) -> Result<EmbedReply, EngineError> {
        let (rt, permit) = self.admit()?;
        let (mut tx, rx) = oneshot::channel();
        let (client, config) = (self.client.clone(), self.config.clone());
        rt.spawn(async move {
            tokio::select! {
                // The client went away: dropping the call closes the connection.
                () = tx.closed() => {}
                r = embed::call(&client, &config, req) => {
                    // The permit goes back before the reply, so a client that sends again on
                    // its reply finds the room it just freed.
                    drop(permit);
                    let _ = tx.send(r);
                }
            }
        });
        Ok(rx)
    }

    fn health(&self) -> Health {
        let in_flight = self.info.queue_capacity - self.slots.available_permits();
        Health { in_flight, running: in_flight, busy: in_flight > 0, alive: true }
    }
}

struct Call {
    client: reqwest::Client,
    config: OpenAiHttpConfig,
    req: ValidRequest,
    /// Context passages put in the prompt.
    context_used: u32,
}

type Tx = mpsc::Sender<Result<TokenEvent, EngineError>>;

impl Call {
    async fn run(self, tx: Tx, _permit: OwnedSemaphorePermit) {
        tokio::select! {
            // The client went away: dropping the response future closes the upstream stream,
            // which makes llama-server stop generating too.
            _ = tx.closed() => {}
            res = self.stream(&tx) => {
                if let Err(e) = res {
                    let _ = tx.send(Err(e)).await;
                }
            }
        }
    }

    fn body(&self) -> (String, Value) {
        let p = &self.req.params;
        let mut body = json!({
            "model": self.config.model,
            "stream": true,
            "stream_options": {"include_usage": true},
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
            "frequency_penalty": p.frequency_penalty,
            "presence_penalty": p.presence_penalty,
            // llama.cpp and Ollama extensions; OpenAI-compatible servers ignore unknown fields.
            "top_k": p.top_k,
            "repeat_penalty": p.repeat_penalty,
            "ignore_eos": p.ignore_eos,
        });
        if let Some(seed) = p.seed {
            body["seed"] = json!(seed);
        }
        if !p.stop.is_empty() {
            body["stop"] = json!(p.stop);
        }
        match &p.format {
            None => {}
            Some(nova_proto::ResponseFormat::JsonObject) => {
                body["response_format"] = json!({"type": "json_object"});
            }
            Some(nova_proto::ResponseFormat::JsonSchema { schema }) => {
                // The schema was checked to be a JSON object when the request was made.
                let schema: Value = serde_json::from_str(schema).unwrap_or_else(|_| json!({}));
                body["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "nova", "schema": schema}});
            }
        }
        let resume = self.req.resume.as_ref().map(|r| r.text.as_str());
        let path = match &self.req.prompt {
            Prompt::Chat(messages) => {
                let mut msgs: Vec<Value> = messages
                    .iter()
                    .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
                    .collect();
                // llama.cpp's server (and Ollama) continue a trailing assistant message rather
                // than answer anew: the way to pick up another worker's answer.
                if let Some(text) = resume {
                    msgs.push(json!({"role": "assistant", "content": text}));
                }
                body["messages"] = json!(msgs);
                "/v1/chat/completions"
            }
            Prompt::Text(text) => {
                body["prompt"] = json!(format!("{text}{}", resume.unwrap_or("")));
                // llama.cpp's server reads a completion's schema from its own field.
                if let Some(f) = &p.format {
                    body["json_schema"] =
                        serde_json::from_str(f.schema()).unwrap_or_else(|_| json!({}));
                }
                "/v1/completions"
            }
        };
        (format!("{}{}", self.config.base_url, path), body)
    }

    async fn stream(&self, tx: &Tx) -> Result<(), EngineError> {
        let (url, body) = self.body();
        let mut request = self.client.post(&url).json(&body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        let resp = tokio::time::timeout(self.config.idle_timeout, request.send())
            .await
            .map_err(|_| EngineError::Unavailable(format!("{url} did not answer in time")))?
            .map_err(|e| EngineError::Unavailable(format!("{url}: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(EngineError::Upstream {
                status: Some(status.as_u16()),
                message: upstream_message(&text),
            });
        }
        let mut bytes = resp.bytes_stream();
        let mut decoder = sse::Decoder::default();
        let mut events = Vec::new();
        let started = std::time::Instant::now();
        loop {
            let chunk = tokio::time::timeout(self.config.idle_timeout, bytes.next())
                .await
                .map_err(|_| EngineError::Unavailable("the upstream stream went silent".into()))?;
            let Some(chunk) = chunk else {
                return Err(EngineError::Upstream {
                    status: None,
                    message: "the stream ended without [DONE]".into(),
                });
            };
            let chunk =
                chunk.map_err(|e| EngineError::Unavailable(format!("reading the stream: {e}")))?;
            // Tokens decoded before a bad event are still sent, then the error.
            let decoded = decoder.push(&chunk, &mut events);
            for event in events.drain(..) {
                match event {
                    sse::Event::Token(text) => {
                        if tx.send(Ok(TokenEvent::Token { text })).await.is_err() {
                            return Ok(());
                        }
                    }
                    sse::Event::Done { finish_reason, mut usage } => {
                        if usage.generation_ms == 0.0 {
                            usage.generation_ms = started.elapsed().as_secs_f64() * 1000.0;
                        }
                        usage.context_used = self.context_used;
                        let _ = tx.send(Ok(TokenEvent::Done { finish_reason, usage })).await;
                        return Ok(());
                    }
                }
            }
            decoded?;
        }
    }
}

/// The `error.message` of an OpenAI-shaped error body, else the body itself, shortened.
fn upstream_message(body: &str) -> String {
    let msg = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string());
    msg.chars().take(300).collect()
}
