//! `nova chat`: a conversation in the terminal, with this node's engine or a gateway's swarm.
//!
//! The input line is edited with rustyline (arrows, history across sessions in
//! `<data dir>/chat-history`), on a thread of its own so the answer can stream meanwhile. A line
//! ending in `\` goes on, and `"""` opens and closes a block of several lines. Ctrl-C during an
//! answer stops it (and keeps what came so far in the conversation); at the prompt it clears the
//! line; Ctrl-D or `/exit` leaves.

use std::{io::Write as _, process::ExitCode, time::Duration};

use futures_util::StreamExt as _;
use nova_engine::{Engine, TokenEvent};
use nova_proto::{
    ChatMessage, Limits, Prompt, Role, SamplingParams, Strategy, TaskId, ValidRequest,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::engine_args::{self, EngineArgs};
use crate::Global;

/// The gateway clamps a fanout to this.
const MAX_FANOUT: usize = 16;
/// Lines kept in the input history file.
const HISTORY_LINES: usize = 1000;
/// Longest SSE line read from a gateway; a longer one ends the answer with an error.
const MAX_EVENT_BYTES: usize = 1 << 20;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Talk to the swarm through this gateway (e.g. http://127.0.0.1:8787) instead of this
    /// node's own engine.
    #[arg(long, value_parser = super::url_arg::parse)]
    gateway: Option<String>,
    /// Bearer token for --gateway (default: the one in <data dir>/api-token).
    #[arg(long, env = "NOVA_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A system prompt that opens the conversation.
    #[arg(long)]
    system: Option<String>,
    /// Most tokens in each answer.
    #[arg(long, default_value_t = 512)]
    max_tokens: u32,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
    #[command(flatten)]
    engine: EngineArgs,
}

/// What the input thread read.
enum Input {
    Line(String),
    Interrupted,
    Eof,
}

/// Where answers come from.
enum Backend {
    Local(Box<dyn Engine>),
    Gateway { client: reqwest::Client, url: String, token: String },
}

struct Session {
    backend: Backend,
    model: String,
    strategy: Option<Strategy>,
    fanout: Option<usize>,
    messages: Vec<ChatMessage>,
    max_tokens: u32,
    temperature: f32,
}

pub(crate) async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let backend = match &args.gateway {
        Some(url) => {
            let token = super::gateway_args::token_or_saved(args.token.as_deref(), global)?;
            Backend::Gateway { client: reqwest::Client::new(), url: url.clone(), token }
        }
        None => Backend::Local(Box::new(engine_args::load_llama(global, &args.engine).await?)),
    };
    let mut session = Session {
        model: args.engine.model.clone(),
        backend,
        strategy: None,
        fanout: None,
        messages: args.system.iter().map(|s| ChatMessage::system(s.clone())).collect(),
        max_tokens: args.max_tokens,
        temperature: args.temperature,
    };
    let where_ = match &session.backend {
        Backend::Local(_) => "this node's engine".to_owned(),
        Backend::Gateway { url, .. } => format!("the swarm at {url}"),
    };
    println!("nova chat with {} on {where_}; /help for commands, Ctrl-D to leave", session.model);

    let history = global.data_dir().ok().map(|d| d.join("chat-history"));
    let (want_tx, want_rx) = std::sync::mpsc::sync_channel::<String>(1);
    let (line_tx, mut lines) = mpsc::channel::<Input>(1);
    let reader = std::thread::spawn(move || read_lines(want_rx, line_tx, history));
    loop {
        if want_tx.send("> ".into()).is_err() {
            break;
        }
        match lines.recv().await {
            Some(Input::Line(line)) => {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                if let Some(command) = line.strip_prefix('/') {
                    if !session.command(global, &args.engine, command).await? {
                        break;
                    }
                    continue;
                }
                session.ask(line).await;
            }
            Some(Input::Interrupted) => println!("(Ctrl-D or /exit to leave)"),
            Some(Input::Eof) | None => break,
        }
    }
    drop(want_tx);
    let _ = reader.join();
    Ok(ExitCode::SUCCESS)
}

/// The input thread: one (possibly multi-line) input per prompt asked for on `want`.
fn read_lines(
    want: std::sync::mpsc::Receiver<String>,
    out: mpsc::Sender<Input>,
    history: Option<std::path::PathBuf>,
) {
    use rustyline::{error::ReadlineError, Config, DefaultEditor};
    let config = Config::builder().max_history_size(HISTORY_LINES).map(|b| b.build());
    let Ok(mut editor) = config.and_then(DefaultEditor::with_config) else {
        let _ = out.blocking_send(Input::Eof);
        return;
    };
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    while let Ok(prompt) = want.recv() {
        let mut text = String::new();
        let mut block = false;
        let input = loop {
            let p = if text.is_empty() && !block { prompt.as_str() } else { "… " };
            match editor.readline(p) {
                Ok(line) if line.trim() == "\"\"\"" => {
                    if block {
                        break Input::Line(text);
                    }
                    block = true;
                }
                Ok(line) if block => {
                    text.push_str(&line);
                    text.push('\n');
                }
                Ok(line) => match line.strip_suffix('\\') {
                    Some(head) => {
                        text.push_str(head);
                        text.push('\n');
                    }
                    None => {
                        text.push_str(&line);
                        break Input::Line(text);
                    }
                },
                Err(ReadlineError::Interrupted) => break Input::Interrupted,
                Err(_) => break Input::Eof,
            }
        };
        if let Input::Line(l) = &input {
            let _ = editor.add_history_entry(l.trim());
            if let Some(h) = &history {
                let _ = editor.save_history(h);
            }
        }
        let eof = matches!(input, Input::Eof);
        if out.blocking_send(input).is_err() || eof {
            return;
        }
    }
}

const HELP: &str = "commands:
  /strategy NAME   race, best_of_n, vote, council or auto (with --gateway)
  /fanout N        how many workers answer (with --gateway)
  /model NAME      another model (a catalog name, or a model the swarm serves)
  /clear           forget the conversation so far
  /exit            leave (or Ctrl-D)
a line ending in \\ goes on; \"\"\" opens and closes a block of several lines;
Ctrl-C stops an answer";

impl Session {
    /// Runs a `/command`; false to leave.
    async fn command(
        &mut self,
        global: &Global,
        engine: &EngineArgs,
        line: &str,
    ) -> anyhow::Result<bool> {
        let (name, arg) = line.split_once(' ').map_or((line, ""), |(n, a)| (n, a.trim()));
        let gateway = matches!(self.backend, Backend::Gateway { .. });
        match name {
            "exit" | "quit" => return Ok(false),
            "help" => println!("{HELP}"),
            "clear" => {
                self.messages.retain(|m| m.role == Role::System);
                println!("(the conversation is forgotten)");
            }
            "strategy" | "fanout" if !gateway => {
                println!("(/{name} needs --gateway: this node answers alone)")
            }
            "strategy" => match serde_json::from_value::<Strategy>(json!(arg)) {
                Ok(s) => {
                    self.strategy = Some(s);
                    println!("(strategy {arg})");
                }
                Err(_) => {
                    println!("(unknown strategy {arg:?}: race, best_of_n, vote, council or auto)")
                }
            },
            "fanout" => match arg.parse::<usize>() {
                Ok(n) if (1..=MAX_FANOUT).contains(&n) => {
                    self.fanout = Some(n);
                    println!("(fanout {n})");
                }
                _ => println!("(fanout is a number from 1 to {})", MAX_FANOUT),
            },
            "model" if arg.is_empty() => println!("(model {})", self.model),
            "model" => {
                if let Backend::Local(_) = self.backend {
                    let args = EngineArgs { model: arg.to_owned(), ..engine.clone() };
                    match engine_args::load_llama(global, &args).await {
                        Ok(e) => self.backend = Backend::Local(Box::new(e)),
                        Err(e) => {
                            println!("(cannot load {arg}: {e:#})");
                            return Ok(true);
                        }
                    }
                }
                self.model = arg.to_owned();
                println!("(model {arg})");
            }
            _ => println!("(unknown command /{name}; /help lists them)"),
        }
        Ok(true)
    }

    /// Asks `text`, streaming the answer until it ends or Ctrl-C stops it.
    async fn ask(&mut self, text: &str) {
        self.messages.push(ChatMessage::user(text.to_owned()));
        self.trim();
        let (tx, mut rx) = mpsc::channel::<Result<String, String>>(64);
        let mut answer = String::new();
        // Dropping the answer's future (a Ctrl-C) drops its stream: the engine or the gateway
        // stops generating.
        let outcome = {
            let answering = self.answer(tx);
            tokio::pin!(answering);
            let mut out = std::io::stdout();
            let mut finished = false;
            loop {
                tokio::select! {
                    piece = rx.recv() => match piece {
                        Some(Ok(t)) => {
                            answer.push_str(&t);
                            let _ = out.write_all(t.as_bytes());
                            let _ = out.flush();
                        }
                        Some(Err(e)) => break Some(e),
                        None => break None,
                    },
                    () = &mut answering, if !finished => finished = true,
                    _ = tokio::signal::ctrl_c() => break Some("stopped".into()),
                }
            }
        };
        println!();
        if let Some(why) = outcome {
            println!("[{why}]");
        }
        if answer.is_empty() {
            self.messages.pop();
        } else {
            self.messages.push(ChatMessage { role: Role::Assistant, content: answer });
        }
    }

    /// Drops the oldest turns until the conversation fits nova's request limits.
    fn trim(&mut self) {
        let limits = Limits::default();
        let size = |m: &[ChatMessage]| m.iter().map(|m| m.content.len()).sum::<usize>();
        while self.messages.len() > 1
            && (self.messages.len() > limits.max_messages
                || size(&self.messages) > limits.max_prompt_bytes)
        {
            let first = self.messages.iter().position(|m| m.role != Role::System).unwrap_or(0);
            self.messages.remove(first);
        }
    }

    /// Streams the answer to the conversation into `tx`, pieces of text or an error.
    async fn answer(&self, tx: mpsc::Sender<Result<String, String>>) {
        let r = match &self.backend {
            Backend::Local(engine) => self.local(engine.as_ref(), &tx).await,
            Backend::Gateway { client, url, token } => self.remote(client, url, token, &tx).await,
        };
        if let Err(e) = r {
            let _ = tx.send(Err(e)).await;
        }
    }

    async fn local(
        &self,
        engine: &dyn Engine,
        tx: &mpsc::Sender<Result<String, String>>,
    ) -> Result<(), String> {
        let params = SamplingParams {
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            ..SamplingParams::default()
        };
        let id = TaskId(rand_id());
        let req =
            ValidRequest::new(id, Prompt::Chat(self.messages.clone()), params, &Limits::default())
                .map_err(|e| e.to_string())?;
        let mut stream = engine.submit(req).map_err(|e| e.to_string())?;
        while let Some(ev) = stream.recv().await {
            match ev.map_err(|e| e.to_string())? {
                TokenEvent::Token { text } => {
                    if tx.send(Ok(text)).await.is_err() {
                        return Ok(());
                    }
                }
                TokenEvent::Done { .. } => return Ok(()),
            }
        }
        Err("the engine stopped without finishing the answer".into())
    }

    async fn remote(
        &self,
        client: &reqwest::Client,
        url: &str,
        token: &str,
        tx: &mpsc::Sender<Result<String, String>>,
    ) -> Result<(), String> {
        let mut nova = json!({});
        if let Some(s) = self.strategy {
            nova["strategy"] = json!(s);
        }
        if let Some(n) = self.fanout {
            nova["fanout"] = json!(n);
        }
        let messages: Vec<Value> = self
            .messages
            .iter()
            .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        let body = json!({"model": self.model, "messages": messages, "stream": true,
            "max_tokens": self.max_tokens, "temperature": self.temperature, "nova": nova});
        let resp = client
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth(token)
            .json(&body)
            .timeout(Duration::from_secs(600))
            .send()
            .await
            .map_err(|e| format!("cannot reach {url}: {e}"))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let v: Value = resp.json().await.unwrap_or_default();
            let msg = v["error"]["message"].as_str().unwrap_or("no message").to_owned();
            return Err(format!("HTTP {status}: {msg}"));
        }
        let mut stream = resp.bytes_stream();
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(&chunk.map_err(|e| format!("the stream broke: {e}"))?);
            while let Some(at) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=at).collect();
                let line = String::from_utf8_lossy(&line);
                let Some(data) = line.trim().strip_prefix("data: ") else { continue };
                if data == "[DONE]" {
                    return Ok(());
                }
                let v: Value =
                    serde_json::from_str(data).map_err(|e| format!("a bad event: {e}"))?;
                if let Some(e) = v.get("error") {
                    return Err(e["message"].as_str().unwrap_or("error").to_owned());
                }
                if let Some(t) =
                    v["choices"][0]["delta"]["content"].as_str().filter(|t| !t.is_empty())
                {
                    if tx.send(Ok(t.to_owned())).await.is_err() {
                        return Ok(());
                    }
                }
            }
            if buf.len() > MAX_EVENT_BYTES {
                return Err(format!("an event longer than {MAX_EVENT_BYTES} bytes"));
            }
        }
        Ok(())
    }
}

fn rand_id() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}
