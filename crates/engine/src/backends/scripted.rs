//! A deterministic engine for tests of strategy, timing and fault logic. It never pretends to
//! be a model: its answers are scripted, word by word, at a fixed pace.

use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use nova_proto::{EmbedRequest, Embeddings, FinishReason, Prompt, TokenEvent, Usage, ValidRequest};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::{EmbedReply, Engine, EngineError, EngineInfo, Health, OutputFilter, TokenStream};

/// Width of the scripted engine's vectors.
pub const SCRIPTED_EMBED_DIM: usize = 32;

/// What a [`ScriptedEngine`] answers.
#[derive(Debug, Clone)]
pub enum Script {
    /// Repeats the last message (or the raw prompt).
    Echo,
    /// Always answers this text.
    Fixed(String),
    /// Fails every request with this error, after streaming nothing.
    Fail(EngineError),
    /// Streams the first `after` words of `text`, then fails with `error` (a worker dying
    /// mid-generation).
    FailAfter {
        /// The answer it starts.
        text: String,
        /// Words streamed before failing.
        after: u32,
        /// The failure.
        error: EngineError,
    },
    /// The script of the first rule whose key the prompt contains (an empty key matches
    /// everything); an empty answer if none does. One engine can then answer a council's
    /// question, its ranking prompt and its synthesis prompt differently.
    Keyed(Vec<(String, Script)>),
}

/// What a prompt without a matching rule gets.
static NO_RULE: Script = Script::Fixed(String::new());

/// The script that answers `req`: `script` itself unless it is keyed.
fn resolve<'a>(script: &'a Script, req: &ValidRequest) -> &'a Script {
    let Script::Keyed(rules) = script else { return script };
    let text = match &req.prompt {
        Prompt::Text(t) => t.clone(),
        Prompt::Chat(m) => m.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n"),
    };
    match rules.iter().find(|(key, _)| text.contains(key.as_str())) {
        Some((_, s)) => resolve(s, req),
        None => &NO_RULE,
    }
}

/// A deterministic engine that streams its script one word per `token_delay`.
#[derive(Debug)]
pub struct ScriptedEngine {
    info: EngineInfo,
    script: Script,
    token_delay: Duration,
    in_flight: Arc<AtomicUsize>,
    /// When set, at most this many requests generate at once (a device of fixed speed).
    slots: Option<Arc<Semaphore>>,
    /// Per-request speed varies uniformly by ± this fraction.
    jitter: f64,
    rng: AtomicU64,
}

impl ScriptedEngine {
    /// An engine named `model` that answers by `script`, one word per `token_delay`.
    pub fn new(model: impl Into<String>, script: Script, token_delay: Duration) -> Self {
        Self {
            info: EngineInfo {
                backend: "scripted",
                model: model.into(),
                architecture: None,
                n_ctx: None,
                n_embd: Some(SCRIPTED_EMBED_DIM as u32),
                threads: None,
                slots: 1,
                queue_capacity: 64,
                kv_cache_bytes: None,
            },
            script,
            token_delay,
            in_flight: Arc::new(AtomicUsize::new(0)),
            slots: None,
            jitter: 0.0,
            rng: AtomicU64::new(0x9E3779B97F4A7C15),
        }
    }

    /// Accepts at most `n` requests at once (queued or running); more get
    /// [`EngineError::QueueFull`], as a small device would answer.
    pub fn with_queue_capacity(mut self, n: usize) -> Self {
        self.info.queue_capacity = n.max(1);
        self
    }

    /// A context window of `n_ctx` tokens (by the engines' 3-bytes-a-token estimate), so
    /// grounded prompts keep only the passages that fit.
    pub fn with_n_ctx(mut self, n_ctx: u32) -> Self {
        self.info.n_ctx = Some(n_ctx);
        self
    }

    /// Generates at most `n` requests at once; the rest wait their turn, as on a real device.
    pub fn with_parallelism(mut self, n: usize) -> Self {
        self.slots = Some(Arc::new(Semaphore::new(n.max(1))));
        self.info.slots = n.max(1);
        self
    }

    /// Varies each request's per-token delay uniformly by ± `fraction`, from a seeded sequence.
    pub fn with_jitter(mut self, fraction: f64, seed: u64) -> Self {
        self.jitter = fraction.clamp(0.0, 0.99);
        // Spread nearby seeds apart so workers seeded 1, 2, 3… draw independent sequences.
        self.rng = AtomicU64::new(seed.wrapping_mul(0x9E3779B97F4A7C15) ^ 0xD1B54A32D192ED03);
        self
    }

    fn next_delay(&self) -> Duration {
        if self.jitter == 0.0 {
            return self.token_delay;
        }
        let x = self.rng.fetch_add(0x9E3779B97F4A7C15, Ordering::Relaxed);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        let u = (z >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        self.token_delay.mul_f64(1.0 + self.jitter * (2.0 * u - 1.0))
    }
}

impl Engine for ScriptedEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn submit(&self, req: ValidRequest) -> Result<TokenStream, EngineError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            EngineError::Unavailable("the scripted engine needs a tokio runtime".into())
        })?;
        // The running requests and the queue, as a real engine counts them.
        if self.in_flight.load(Ordering::SeqCst) >= self.info.capacity() {
            return Err(EngineError::QueueFull { capacity: self.info.queue_capacity });
        }
        // Keyed scripts see the passages too, so a test can answer from a document.
        let mut req = req;
        let context_used = crate::ground_by_estimate(&mut req, self.info.n_ctx);
        let text = match resolve(&self.script, &req) {
            // `resolve` never returns a keyed script.
            Script::Keyed(_) => String::new(),
            Script::Echo => match &req.prompt {
                Prompt::Text(t) => t.clone(),
                Prompt::Chat(m) => m.last().map(|m| m.content.clone()).unwrap_or_default(),
            },
            Script::Fixed(t) => t.clone(),
            Script::FailAfter { text, after, error } => {
                let (tx, rx) = mpsc::channel(32);
                let (text, after, error, delay) =
                    (text.clone(), *after, error.clone(), self.token_delay);
                handle.spawn(async move {
                    for word in text.split_inclusive(' ').take(after as usize) {
                        tokio::time::sleep(delay).await;
                        if tx.send(Ok(TokenEvent::Token { text: word.into() })).await.is_err() {
                            return;
                        }
                    }
                    let _ = tx.send(Err(error)).await;
                });
                return Ok(rx);
            }
            Script::Fail(e) => {
                let (tx, rx) = mpsc::channel(1);
                let _ = tx.try_send(Err(e.clone()));
                return Ok(rx);
            }
        };
        let (tx, rx) = mpsc::channel(32);
        let delay = self.next_delay();
        let in_flight = self.in_flight.clone();
        let slots = self.slots.clone();
        in_flight.fetch_add(1, Ordering::SeqCst);
        handle.spawn(async move {
            let _slot = match &slots {
                Some(s) => tokio::select! {
                    p = s.clone().acquire_owned() => p.ok(),
                    _ = tx.closed() => None,
                },
                None => None,
            };
            if !tx.is_closed() {
                stream_words(&text, &req, context_used, delay, &tx).await;
            }
            in_flight.fetch_sub(1, Ordering::SeqCst);
        });
        Ok(rx)
    }

    fn health(&self) -> Health {
        let n = self.in_flight.load(Ordering::SeqCst);
        Health { in_flight: n, running: n, busy: n > 0, alive: true }
    }

    /// Bag-of-words vectors: each lowercased word adds a fixed pseudo-random direction, so
    /// equal texts get equal vectors and texts sharing words point alike. A script that fails
    /// fails embeddings with the same error.
    fn embed(&self, req: EmbedRequest) -> Result<EmbedReply, EngineError> {
        if self.in_flight.load(Ordering::SeqCst) >= self.info.capacity() {
            return Err(EngineError::QueueFull { capacity: self.info.queue_capacity });
        }
        let (tx, rx) = oneshot::channel();
        let reply = match &self.script {
            Script::Fail(e) | Script::FailAfter { error: e, .. } => Err(e.clone()),
            _ => {
                let vectors: Vec<Vec<f32>> = req.inputs.iter().map(|t| bag_of_words(t)).collect();
                let words: usize = req.inputs.iter().map(|t| t.split_whitespace().count()).sum();
                Ok(Embeddings {
                    model: self.info.model.clone(),
                    vectors,
                    prompt_tokens: words.max(req.inputs.len()) as u32,
                })
            }
        };
        let _ = tx.send(reply);
        Ok(rx)
    }
}

/// The scripted vector of `text` (see [`ScriptedEngine::embed`]).
fn bag_of_words(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; SCRIPTED_EMBED_DIM];
    let mut add = |word: &str| {
        // FNV-1a of the word seeds a splitmix sequence: one direction per word.
        let mut h = 0xcbf29ce484222325u64;
        for b in word.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
        }
        for x in v.iter_mut() {
            h = h.wrapping_add(0x9E3779B97F4A7C15);
            let mut z = h;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
            *x += ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
        }
    };
    let mut any = false;
    for word in text.split_whitespace() {
        add(&word.to_lowercase());
        any = true;
    }
    if !any {
        // Whitespace alone still gets a direction of its own.
        add(text);
    }
    if !nova_proto::embed::l2_normalize(&mut v) {
        v[0] = 1.0;
    }
    v
}

async fn stream_words(
    text: &str,
    req: &ValidRequest,
    context_used: u32,
    delay: Duration,
    tx: &mpsc::Sender<Result<TokenEvent, EngineError>>,
) {
    let mut filter = OutputFilter::new(&req.params.stop);
    let mut generated = 0;
    let mut finish = FinishReason::Stop;
    // A resumed request skips the words the client already has, as a model continuing its own
    // answer would, and counts them as generated.
    let mut skip = req.resume.as_ref().map_or("", |r| r.text.as_str());
    for word in text.split_inclusive(' ') {
        if let Some(rest) = skip.strip_prefix(word) {
            skip = rest;
            generated += 1;
            continue;
        }
        skip = "";
        if generated >= req.params.max_tokens {
            finish = FinishReason::Length;
            break;
        }
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        generated += 1;
        let out = filter.push(word.as_bytes());
        if !out.is_empty() && tx.send(Ok(TokenEvent::Token { text: out })).await.is_err() {
            return;
        }
        if filter.stopped() {
            break;
        }
    }
    let rest = filter.finish();
    if !rest.is_empty() && tx.send(Ok(TokenEvent::Token { text: rest })).await.is_err() {
        return;
    }
    let usage = Usage {
        prompt_tokens: req.prompt.text_len().div_ceil(4) as u32,
        completion_tokens: generated,
        prompt_ms: 0.0,
        generation_ms: delay.as_secs_f64() * 1000.0 * f64::from(generated),
        context_used,
    };
    let _ = tx.send(Ok(TokenEvent::Done { finish_reason: finish, usage })).await;
}

#[cfg(test)]
mod tests {
    use nova_proto::{ChatMessage, Limits, SamplingParams, TaskId};

    use super::*;
    use crate::collect;

    fn req(text: &str, params: SamplingParams) -> ValidRequest {
        let prompt = Prompt::Chat(vec![ChatMessage::user(text)]);
        ValidRequest::new(TaskId(7), prompt, params, &Limits::default()).unwrap()
    }

    #[tokio::test]
    async fn echoes_word_by_word_and_honours_limits() -> Result<(), EngineError> {
        let e = ScriptedEngine::new("s", Script::Echo, Duration::from_millis(1));
        let (text, done) = collect(e.submit(req("a b c d", SamplingParams::default()))?).await?;
        assert_eq!(text, "a b c d");
        assert!(matches!(done, TokenEvent::Done { finish_reason: FinishReason::Stop, .. }));
        let params = SamplingParams { max_tokens: 2, ..Default::default() };
        let (text, done) = collect(e.submit(req("a b c d", params))?).await?;
        assert_eq!(text, "a b ");
        assert!(matches!(done, TokenEvent::Done { finish_reason: FinishReason::Length, .. }));
        Ok(())
    }

    #[tokio::test]
    async fn embeddings_are_deterministic_bags_of_words() -> Result<(), EngineError> {
        let e = ScriptedEngine::new("s", Script::Echo, Duration::from_millis(1));
        let texts = ["the cat sat", "The cat  sat", "a dog ran far", " "];
        let req =
            EmbedRequest::new(TaskId(1), texts.map(String::from).to_vec(), &Limits::default())
                .expect("valid");
        let out = crate::embeddings(e.embed(req.clone())?).await?;
        assert_eq!(out.model, "s");
        assert_eq!(out.vectors.len(), 4);
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        for v in &out.vectors {
            assert_eq!(v.len(), SCRIPTED_EMBED_DIM);
            assert!((dot(v, v) - 1.0).abs() < 1e-5);
        }
        assert_eq!(out.vectors[0], out.vectors[1], "case and spacing do not matter");
        assert!(dot(&out.vectors[0], &out.vectors[2]) < 0.9);
        assert_eq!(crate::embeddings(e.embed(req)?).await?, out, "the same every time");

        let broken =
            ScriptedEngine::new("s", Script::Fail(EngineError::Decode("x".into())), Duration::ZERO);
        let req =
            EmbedRequest::new(TaskId(2), vec!["a".into()], &Limits::default()).expect("valid");
        assert_eq!(
            crate::embeddings(broken.embed(req)?).await,
            Err(EngineError::Decode("x".into()))
        );
        Ok(())
    }

    #[tokio::test]
    async fn dropping_the_stream_frees_the_engine() -> Result<(), EngineError> {
        let e =
            ScriptedEngine::new("s", Script::Fixed("x ".repeat(1000)), Duration::from_millis(5));
        let mut rx =
            e.submit(req("hi", SamplingParams { max_tokens: 1000, ..Default::default() }))?;
        rx.recv().await;
        assert_eq!(e.health().in_flight, 1);
        drop(rx);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(e.health().in_flight, 0);
        Ok(())
    }
}
