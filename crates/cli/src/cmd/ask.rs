//! `nova ask`: one prompt to the local engine, the answer streamed to stdout.

use std::{
    io::Write,
    process::ExitCode,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use nova_proto::{ChatMessage, Limits, Prompt, SamplingParams, TaskId, TokenEvent, ValidRequest};

use super::engine_args::{self, EngineArgs};
use crate::Global;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The prompt.
    prompt: String,
    #[command(flatten)]
    engine: EngineArgs,
    /// Sampling temperature; 0 is greedy and reproducible.
    #[arg(long, short = 't', default_value_t = 0.7)]
    temperature: f32,
    /// Sampler seed (same seed, same answer).
    #[arg(long)]
    seed: Option<u64>,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    max_tokens: u32,
    /// Nucleus sampling mass.
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Keep only the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 40)]
    top_k: u32,
    /// Penalty on recently repeated tokens (1 = off).
    #[arg(long, default_value_t = 1.1)]
    repeat_penalty: f32,
    /// Stop before this string (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// A system message before the prompt.
    #[arg(long)]
    system: Option<String>,
    /// Send the prompt as raw text to continue, without the chat template.
    #[arg(long)]
    raw: bool,
    /// Print token counts and speed to stderr at the end.
    #[arg(long)]
    stats: bool,
    /// Generate all --max-tokens, past the model's end of text (for measuring speed).
    #[arg(long)]
    ignore_eos: bool,
    /// Answer from this device's indexed documents (`nova rag add`): the best passages go in
    /// the prompt and the sources used are printed after the answer.
    #[arg(long)]
    rag: bool,
    /// Passages retrieved with --rag (the model's window may take fewer). One suits small
    /// models best (see BENCHMARKS.md, "Knowledge").
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    rag_k: u32,
}

/// The best passages of this device's index for `question`, ranked as the gateway ranks them.
fn local_passages(
    global: &Global,
    question: &str,
    k: u32,
) -> anyhow::Result<Vec<nova_proto::knowledge::RankedHit>> {
    let kb = super::rag::shared(&global.data_dir()?)?;
    let query = nova_proto::knowledge::KnowledgeQuery { query: question.into(), k };
    let reply = kb.search(&query).map_err(|e| anyhow::anyhow!("searching the index: {e}"))?;
    Ok(nova_proto::knowledge::merge(vec![("local".into(), reply)], k as usize))
}

/// The passages the answer was given, numbered as in its prompt.
fn print_sources(
    out: &mut impl Write,
    hits: &[nova_proto::knowledge::RankedHit],
    used: usize,
) -> std::io::Result<()> {
    if hits.is_empty() {
        return writeln!(out, "\n(no passage of the index matched the question)");
    }
    writeln!(out, "\nSources:")?;
    for (i, h) in hits.iter().take(used).enumerate() {
        writeln!(out, "[{}] {} (part {}, score {:.2})", i + 1, h.path, h.chunk + 1, h.score)?;
    }
    if used < hits.len() {
        writeln!(out, "({} more passages did not fit the model's window)", hits.len() - used)?;
    }
    Ok(())
}

pub(crate) async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let prompt = if args.raw {
        Prompt::Text(args.prompt.clone())
    } else {
        let mut messages = Vec::new();
        if let Some(s) = &args.system {
            messages.push(ChatMessage::system(s.clone()));
        }
        messages.push(ChatMessage::user(args.prompt.clone()));
        Prompt::Chat(messages)
    };
    let params = SamplingParams {
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        seed: args.seed,
        max_tokens: args.max_tokens,
        stop: args.stop.clone(),
        repeat_penalty: args.repeat_penalty,
        ignore_eos: args.ignore_eos,
        ..SamplingParams::default()
    };
    let id = TaskId(
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1),
    );
    let mut req =
        ValidRequest::new(id, prompt, params, &Limits::default()).context("invalid request")?;
    let hits =
        if args.rag { local_passages(global, &args.prompt, args.rag_k)? } else { Vec::new() };
    req.context = hits
        .iter()
        .map(|h| nova_proto::Passage { source: h.path.clone(), text: h.text.clone() })
        .collect();
    if !args.raw {
        if let Some(note) = engine_args::base_model_note(global, &args.engine) {
            eprintln!("{note}");
        }
    }
    let engine = engine_args::load(global, &args.engine).await?;

    let started = Instant::now();
    let mut stream = engine.submit(req)?;
    let mut out = std::io::stdout().lock();
    let mut ttft = None;
    loop {
        let event = tokio::select! {
            ev = stream.recv() => ev,
            _ = tokio::signal::ctrl_c() => {
                drop(stream);
                writeln!(out)?;
                eprintln!("interrupted");
                return Ok(ExitCode::from(130));
            }
        };
        match event {
            Some(Ok(TokenEvent::Token { text })) => {
                ttft.get_or_insert_with(|| started.elapsed());
                out.write_all(text.as_bytes())?;
                out.flush()?;
            }
            Some(Ok(TokenEvent::Done { finish_reason, usage })) => {
                writeln!(out)?;
                if args.rag {
                    print_sources(&mut out, &hits, usage.context_used as usize)?;
                }
                if args.stats {
                    eprintln!(
                        "[{} prompt tokens in {:.0} ms; {} generated at {:.1} tok/s; first token after {:.0} ms; finish: {}]",
                        usage.prompt_tokens,
                        usage.prompt_ms,
                        usage.completion_tokens,
                        usage.generation_tps(),
                        ttft.unwrap_or_default().as_secs_f64() * 1000.0,
                        finish_reason.as_openai(),
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            Some(Err(e)) => {
                writeln!(out)?;
                return Err(e).context("generation failed");
            }
            None => anyhow::bail!("the engine stopped without finishing the answer"),
        }
    }
}
