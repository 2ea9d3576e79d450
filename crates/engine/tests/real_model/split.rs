//! A model's layers split over ggml-rpc: the head keeps the first layers, shards the rest.
//! Here each shard is served in this process, behind the same bridge and frame checks the
//! swarm uses, over socketpairs instead of swarm streams; `it split::` runs shards in other
//! processes over the swarm.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use nova_engine::{Engine, EngineError, LlamaConfig, LlamaEngine};
use nova_proto::TokenEvent;
use nova_rpc::{wire, Link, Route, Shard, Traffic};
use tokio::sync::Notify;

use crate::{ask, chat, greedy, model_path, serial};

/// Serves each connection on a thread of this process, through the head bridge and the shard's
/// frame checks. `kill` ends every session at once, as a shard dying would.
struct InProcess {
    link: Arc<Link>,
    rt: tokio::runtime::Handle,
    kill: Arc<Notify>,
}

impl Route for InProcess {
    fn connect(&self) -> io::Result<OwnedFd> {
        let kill = self.kill.clone();
        self.link.bridge(&self.rt, move || async move {
            let (head, shard) = tokio::net::UnixStream::pair()?;
            let (ours, server) = std::os::unix::net::UnixStream::pair()?;
            std::thread::spawn(move || nova_rpc::serve(server.into(), 1));
            ours.set_nonblocking(true)?;
            let ours = tokio::net::UnixStream::from_std(ours)?;
            tokio::spawn(async move {
                tokio::select! {
                    r = nova_rpc::shard(shard, ours, wire::FrameLimits::default(), u64::MAX) => {
                        if let Err(e) = r { panic!("the shard refused our own head: {e}") }
                    }
                    () = kill.notified() => {}
                }
            });
            Ok(head)
        })
    }
}

struct Split {
    engine: LlamaEngine,
    links: Vec<Arc<Link>>,
    kill: Arc<Notify>,
}

impl Split {
    fn traffic(&self) -> Vec<Traffic> {
        self.links.iter().map(|l| l.traffic()).collect()
    }
}

/// Loads `model` with the given shard layer counts; `tag` keeps endpoint names unique (ggml-rpc
/// keeps per-name state for the life of the process).
async fn load(model: &str, tag: &str, layers: &[u32], timeout: Duration) -> Split {
    let kill = Arc::new(Notify::new());
    let mut links = Vec::new();
    let shards: Vec<Shard> = layers
        .iter()
        .enumerate()
        .map(|(i, &layers)| {
            let endpoint = format!("test-{tag}-{i}:0");
            let link = Link::new(&endpoint, wire::FrameLimits::default(), timeout);
            let route = InProcess {
                link: link.clone(),
                rt: tokio::runtime::Handle::current(),
                kill: kill.clone(),
            };
            nova_rpc::add_route(&endpoint, Arc::new(route));
            links.push(link.clone());
            Shard { endpoint, layers, link }
        })
        .collect();
    let config = LlamaConfig::new(model_path(model), model)
        .with_threads(Some(1))
        .with_n_ctx(512)
        .with_shards(shards);
    let engine = tokio::task::spawn_blocking(move || LlamaEngine::load(config))
        .await
        .expect("join")
        .expect("the split model loads");
    Split { engine, links, kill }
}

const PROMPT: &str = "Name three rivers in Europe and say where each one flows.";
const TOKENS: u32 = 48;

/// Splits `model` each way in `splits` and compares each greedy answer with the unsplit one:
/// equal throughout when `exact`, else equal for at least the first `prefix` characters.
async fn same_as_whole(model: &str, splits: &[&[u32]], exact: bool, prefix: usize) {
    let _one = serial().await;
    let whole = load(model, &format!("{model}-whole"), &[], Duration::from_secs(30)).await;
    let want = ask(&whole.engine, chat(PROMPT, greedy(TOKENS))).await.unwrap();
    drop(whole);
    println!("whole: {want:?}");
    assert!(want.len() > 40, "a real answer: {want:?}");
    for (n, layers) in splits.iter().enumerate() {
        let split = load(model, &format!("{model}-{n}"), layers, Duration::from_secs(30)).await;
        let loaded = split.traffic();
        let got = ask(&split.engine, chat(PROMPT, greedy(TOKENS))).await.unwrap();
        let common = got.chars().zip(want.chars()).take_while(|(a, b)| a == b).count();
        println!(
            "{model} {layers:?}: {common} of {} characters as unsplit: {got:?}",
            want.chars().count()
        );
        if exact {
            assert_eq!(got, want, "{model} split {layers:?} answers differently");
        }
        assert!(common >= prefix, "{model} split {layers:?} parts after {common} characters");
        for ((link, after), before) in split.links.iter().zip(split.traffic()).zip(loaded) {
            let t = after - before;
            let sent = t.frames[wire::cmd::SET_TENSOR as usize];
            println!(
                "{model} {layers:?} {}: load {} connections, {:.1} MiB to the shard; answer: {} \
                 round trips, {} SET_TENSOR, {} GRAPH_COMPUTE, {} RECOMPUTE, {} B out, {} B back",
                link.name(),
                before.connections,
                before.bytes_to_shard as f64 / 1048576.0,
                t.round_trips,
                sent,
                t.frames[wire::cmd::GRAPH_COMPUTE as usize],
                t.frames[wire::cmd::GRAPH_RECOMPUTE as usize],
                t.bytes_to_shard,
                t.bytes_from_shard,
            );
            // Each decode waits on each shard once (the next hop's input or the logits): one
            // per generated token, plus the prompt's.
            assert!(
                t.round_trips >= u64::from(TOKENS) - 1 && t.round_trips <= u64::from(TOKENS) + 8,
                "{} round trips for {TOKENS} tokens",
                t.round_trips
            );
            assert!(link.lost().is_none());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_smollm2_answers_token_for_token_as_unsplit() {
    // SmolLM2-135M has 30 layers: the head keeps the rest of each split.
    same_as_whole("smollm2-135m", &[&[15], &[10, 10], &[8, 8, 8]], true, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_gemma3_answers_token_for_token_as_unsplit() {
    // Gemma 3 270M has 18 layers. Its Q4_K weights are repacked for the CPU's kernels, on the
    // head by llama.cpp and on each shard by nova's server (crates/rpc/cpp/repack.inc): before
    // the shards packed theirs, [6, 6] and [4, 4, 4] parted from unsplit after 105 characters.
    same_as_whole("gemma3-270m", &[&[9], &[6, 6], &[4, 4, 4]], true, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_a_lost_shard_ends_the_answer_with_a_clear_error_and_the_node_lives() {
    let _one = serial().await;
    let split = load("smollm2-135m", "lost", &[15], Duration::from_secs(30)).await;
    let mut params = greedy(400);
    params.ignore_eos = true;
    let mut stream = split.engine.submit(chat(PROMPT, params)).unwrap();
    let mut tokens = 0;
    let end = loop {
        let ev = tokio::time::timeout(Duration::from_secs(30), stream.recv())
            .await
            .expect("no hang after the shard is lost");
        match ev {
            Some(Ok(TokenEvent::Token { .. })) => {
                tokens += 1;
                if tokens == 8 {
                    split.kill.notify_waiters();
                }
            }
            Some(Ok(TokenEvent::Done { .. })) => panic!("finished although its shard was lost"),
            Some(Err(e)) => break e,
            None => panic!("the stream ended without saying why"),
        }
    };
    println!("after {tokens} tokens: {end}");
    assert!(matches!(end, EngineError::Unavailable(_)), "{end:?}");
    assert!(end.to_string().contains("was lost"), "{end}");
    assert!(tokens < 60, "the loss was noticed {tokens} tokens late");
    // The engine is down for good; asking again is refused at once, not hung.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!split.engine.health().alive);
    let again = split.engine.submit(chat(PROMPT, greedy(8)));
    match again {
        Err(e) => println!("then: {e}"),
        Ok(s) => {
            let r = tokio::time::timeout(Duration::from_secs(5), crate::collect(s))
                .await
                .expect("answered at once");
            assert!(r.is_err(), "a dead split engine answered: {r:?}");
        }
    }
}
