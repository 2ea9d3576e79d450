//! Embeddings from SmolLM2-135M-Instruct through llama.cpp: shape, normalisation,
//! reproducibility, chunked evaluation, bounds, and how well a small decoder's mean-pooled
//! hidden states tell paraphrases from unrelated sentences (measured and printed, not judged:
//! see the figures in README.md's API section).

use std::time::{Duration, Instant};

use nova_engine::{EmbedRequest, Embeddings, Engine, EngineError, LlamaConfig, LlamaEngine};
use nova_proto::{ErrorKind, Limits, TaskId};

use crate::{chat, collect, greedy, model_path, serial};

async fn load(chunk: Option<u32>) -> LlamaEngine {
    let config = LlamaConfig::new(model_path("smollm2-135m"), "smollm2-135m")
        .with_threads(Some(2))
        .with_embed_chunk(chunk);
    tokio::task::spawn_blocking(move || LlamaEngine::load(config))
        .await
        .expect("join")
        .expect("SmolLM2 loads")
}

async fn embed(e: &LlamaEngine, texts: &[&str]) -> Result<Embeddings, EngineError> {
    let inputs = texts.iter().map(|t| t.to_string()).collect();
    let req = EmbedRequest::new(TaskId(9), inputs, &Limits::default()).expect("valid");
    tokio::time::timeout(Duration::from_secs(60), nova_engine::embeddings(e.embed(req)?))
        .await
        .expect("embeddings within 60 s")
}

fn cos(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

#[tokio::test]
async fn vectors_are_unit_length_model_wide_and_reproducible() -> Result<(), EngineError> {
    let _serial = serial().await;
    let e = load(None).await;
    let n_embd = e.info().n_embd.expect("llama knows its width") as usize;
    assert_eq!(n_embd, 576, "SmolLM2-135M's hidden size");
    let before = rss_mib();
    let t0 = Instant::now();
    let texts =
        ["The cat sat on the mat.", "Quarterly revenue grew by 4 %.", "The cat sat on the mat."];
    let first = embed(&e, &texts).await?;
    println!(
        "first request (creates the embedding context): {:?}, RSS {before:.0} -> {:.0} MiB",
        t0.elapsed(),
        rss_mib()
    );
    assert_eq!(first.model, "smollm2-135m");
    assert_eq!(first.vectors.len(), 3);
    assert!(first.prompt_tokens >= 6, "{}", first.prompt_tokens);
    for v in &first.vectors {
        assert_eq!(v.len(), n_embd);
        assert!(v.iter().all(|x| x.is_finite()));
        assert!((cos(v, v) - 1.0).abs() < 1e-5, "norm² {}", cos(v, v));
    }
    assert_eq!(first.vectors[0], first.vectors[2], "the same text in one request");
    // Alone, in another request, after other inputs: the same vector.
    let again = embed(&e, &["The cat sat on the mat."]).await?;
    assert_eq!(again.vectors[0], first.vectors[0], "the same text in another request");
    assert!(cos(&first.vectors[0], &first.vectors[1]) < 0.9999);
    Ok(())
}

#[tokio::test]
async fn an_input_longer_than_a_chunk_gives_the_one_pass_mean() -> Result<(), EngineError> {
    let _serial = serial().await;
    // About 300 tokens: two chunks at the default (170), twenty at 16, one at 512.
    let long =
        "Rivers carry water from mountains to the sea, shaping valleys as they go. ".repeat(20);
    let mut vectors = Vec::new();
    for chunk in [Some(512), None, Some(16)] {
        let e = load(chunk).await;
        let out = embed(&e, &[&long]).await?;
        println!("chunk {chunk:?}: {} tokens", out.prompt_tokens);
        assert!(out.prompt_tokens > 170 && out.prompt_tokens < 512, "{}", out.prompt_tokens);
        vectors.push(out.vectors.into_iter().next().expect("one vector"));
    }
    for (i, v) in vectors.iter().enumerate().skip(1) {
        let c = cos(&vectors[0], v);
        println!("cosine to the one-pass vector: {c:.7}");
        // Float rounding of different batch shapes only; a wrong position or a cleared cache
        // between chunks moves the mean far more.
        assert!(c > 0.9999, "chunking {i} changed the vector: cosine {c}");
    }
    Ok(())
}

#[tokio::test]
async fn an_input_too_long_is_refused_by_index_before_any_work() -> Result<(), EngineError> {
    let _serial = serial().await;
    let config = LlamaConfig::new(model_path("smollm2-135m"), "smollm2-135m")
        .with_threads(Some(2))
        .with_n_ctx(256);
    let e = tokio::task::spawn_blocking(move || LlamaEngine::load(config)).await.expect("join")?;
    let long = "word ".repeat(400);
    let err = embed(&e, &["short", &long]).await.unwrap_err();
    let EngineError::Rejected { kind: ErrorKind::PromptTooLong, message } = &err else {
        panic!("{err:?}")
    };
    assert!(message.starts_with("input[1] is 40"), "{message}");
    assert!(message.ends_with("smollm2-135m embeds at most 256 per input"), "{message}");
    // The engine is free again and embeds what fits.
    assert_eq!(e.health().in_flight, 0);
    assert_eq!(embed(&e, &["short"]).await?.vectors.len(), 1);
    Ok(())
}

#[tokio::test]
async fn embeddings_interleave_with_a_running_generation() -> Result<(), EngineError> {
    let _serial = serial().await;
    let e = load(None).await;
    let q = "What is the capital of France?";
    let alone = collect(e.submit(chat(q, greedy(32)))?).await?.0;
    let stream = e.submit(chat(q, greedy(32)))?;
    let inputs: Vec<&str> = vec!["Rivers carry water to the sea."; 16];
    let t0 = Instant::now();
    let (generated, embedded) = tokio::join!(collect(stream), embed(&e, &inputs));
    println!("generation beside 16 embeddings: {:?}", t0.elapsed());
    assert_eq!(generated?.0, alone, "a generation beside embeddings is unchanged");
    assert_eq!(embedded?.vectors.len(), 16);
    // A dropped reply is cancelled, and the engine takes work again.
    let req = EmbedRequest::new(TaskId(3), vec!["x".repeat(4000); 64], &Limits::default())
        .expect("valid");
    let t0 = Instant::now();
    drop(e.embed(req)?);
    let deadline = Instant::now() + Duration::from_secs(30);
    while e.health().in_flight > 0 {
        assert!(Instant::now() < deadline, "a cancelled embedding kept the engine");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("cancelled after {:?}", t0.elapsed());
    Ok(())
}

/// Paraphrase pairs; every sentence is unrelated to the other pairs' sentences.
const PAIRS: [(&str, &str); 6] = [
    ("The cat is sleeping on the sofa.", "A cat naps on the couch."),
    ("How do I reset my password?", "I forgot my password and need to change it."),
    ("The stock market fell sharply today.", "Share prices dropped a lot today."),
    ("Paris is the capital of France.", "France's capital city is Paris."),
    ("It is going to rain tomorrow.", "Tomorrow's forecast says rain."),
    ("She plays the violin in an orchestra.", "She is a violinist in a symphony orchestra."),
];

#[tokio::test]
async fn paraphrases_versus_unrelated_sentences_measured() -> Result<(), EngineError> {
    let _serial = serial().await;
    let e = load(None).await;
    let texts: Vec<&str> = PAIRS.iter().flat_map(|(a, b)| [*a, *b]).collect();
    let v = embed(&e, &texts).await?.vectors;
    let mut para = Vec::new();
    let mut unrelated = Vec::new();
    for i in 0..texts.len() {
        for j in i + 1..texts.len() {
            let c = cos(&v[i], &v[j]);
            if i / 2 == j / 2 {
                para.push(c);
            } else {
                unrelated.push(c);
            }
        }
    }
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let min = |x: &[f64]| x.iter().copied().fold(f64::INFINITY, f64::min);
    let max = |x: &[f64]| x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // Retrieval view: for each sentence, is its paraphrase the nearest other sentence?
    let mut top1 = 0;
    for i in 0..texts.len() {
        let best = (0..texts.len())
            .filter(|&j| j != i)
            .max_by(|&a, &b| cos(&v[i], &v[a]).total_cmp(&cos(&v[i], &v[b])))
            .expect("other sentences");
        top1 += usize::from(best / 2 == i / 2);
    }
    println!(
        "SmolLM2-135M mean-pooled cosine: paraphrases mean {:.3} (min {:.3}, max {:.3}), \
         unrelated mean {:.3} (min {:.3}, max {:.3}); paraphrase is nearest for {top1}/{}",
        mean(&para),
        min(&para),
        max(&para),
        mean(&unrelated),
        min(&unrelated),
        max(&unrelated),
        texts.len()
    );
    assert!(para.iter().chain(&unrelated).all(|c| (-1.0001..=1.0001).contains(c)));
    Ok(())
}

#[tokio::test]
async fn gemma_embeds_in_chunks_of_its_large_vocabulary() -> Result<(), EngineError> {
    let _serial = serial().await;
    let text =
        "Rivers carry water from mountains to the sea, shaping valleys as they go. ".repeat(4);
    let mut vectors = Vec::new();
    for chunk in [Some(512), None] {
        let config = LlamaConfig::new(model_path("gemma3-270m"), "gemma3-270m")
            .with_threads(Some(2))
            .with_embed_chunk(chunk);
        let e =
            tokio::task::spawn_blocking(move || LlamaEngine::load(config)).await.expect("join")?;
        let out = embed(&e, &[&text, "short"]).await?;
        let width = e.info().n_embd.expect("width") as usize;
        println!("gemma3-270m, chunk {chunk:?}: width {width}, {} tokens", out.prompt_tokens);
        assert!(out.vectors.iter().all(|v| v.len() == width && (cos(v, v) - 1.0).abs() < 1e-5));
        vectors.push(out.vectors);
    }
    // The default chunk for a 262k vocabulary is 32 tokens: the long input took several.
    for (i, (one_pass, chunked)) in vectors[0].iter().zip(&vectors[1]).enumerate() {
        let c = cos(one_pass, chunked);
        println!("input {i}: cosine between one pass and chunks {c:.7}");
        assert!(c > 0.9999, "input {i}: {c}");
    }
    Ok(())
}
