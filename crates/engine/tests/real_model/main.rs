//! Engine tests on the real models and the real llama.cpp. The models come from the data dir
//! (`scripts/test.sh` pulls them); `llama-server` for the openai_http tests comes from
//! `NOVA_LLAMA_SERVER` (`scripts/build_llama_tools.sh` builds it).

mod batching;
mod embed;
mod json;
mod llama;
mod openai_http;
mod split;

use std::{path::PathBuf, time::Duration};

use nova_engine::{Engine, EngineError, TokenStream};
use nova_proto::{ChatMessage, Limits, Prompt, SamplingParams, TaskId, TokenEvent, ValidRequest};

/// The data dir the test script pulled the models into.
pub(crate) fn data_dir() -> PathBuf {
    std::env::var_os("NOVA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/nova")))
        .expect("HOME or NOVA_HOME must be set")
}

/// Path of a pulled catalog model; panics with the fix when it is missing.
pub(crate) fn model_path(name: &str) -> PathBuf {
    let cache = nova_model::Cache::new(&data_dir());
    match cache.resolve(name) {
        Ok(e) => e.path,
        Err(e) => panic!("{e}; scripts/test.sh pulls the test models"),
    }
}

pub(crate) fn chat(text: &str, params: SamplingParams) -> ValidRequest {
    let prompt = Prompt::Chat(vec![ChatMessage::user(text)]);
    ValidRequest::new(TaskId(1), prompt, params, &Limits::default()).expect("valid request")
}

pub(crate) fn greedy(max_tokens: u32) -> SamplingParams {
    SamplingParams { temperature: 0.0, max_tokens, seed: Some(1), ..SamplingParams::default() }
}

/// Collects a stream with an overall deadline so a hung engine fails the test instead of
/// hanging it.
pub(crate) async fn collect(stream: TokenStream) -> Result<(String, TokenEvent), EngineError> {
    tokio::time::timeout(Duration::from_secs(60), nova_engine::collect(stream))
        .await
        .expect("generation did not finish within 60 s")
}

pub(crate) async fn ask(engine: &dyn Engine, req: ValidRequest) -> Result<String, EngineError> {
    Ok(collect(engine.submit(req)?).await?.0)
}

/// Serialises the tests of this binary: they share one engine and two cores, and under plain
/// `cargo test` they would otherwise run at once and measure each other.
pub(crate) async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}
