//! Swarm scaling with scripted workers of fixed speed (BENCHMARKS.md, "scaling").
//!
//! `cargo run --release -p nova-node --example scaling`
//!
//! 1. Throughput: N workers, each generating one request at a time at a fixed pace; 2·N clients
//!    send fanout-1 requests; aggregate requests/s is compared with N × the single-worker rate.
//! 2. Race latency: each request goes to all N workers whose speed varies per request uniformly
//!    by ±50 %; the measured p50 is compared with the median of the minimum of N draws from the
//!    single-worker latencies measured in the same run (so timer and scheduling overheads of the
//!    harness are in both sides of the comparison).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use nova_api::{Inference, Job, JobEvent};
use nova_engine::{Script, ScriptedEngine};
use nova_node::{Gateway, GatewayConfig, LocalWorker};
use nova_proto::Strategy;
use nova_proto::{ChatMessage, Limits, Prompt, SamplingParams, TaskId, ValidRequest};

const WORDS: usize = 16;
const TOKEN_MS: u64 = 20;

fn job(fanout: usize) -> Job {
    let params = SamplingParams { max_tokens: 1000, ..SamplingParams::default() };
    let prompt = Prompt::Chat(vec![ChatMessage::user("go")]);
    Job {
        request: ValidRequest::new(TaskId(1), prompt, params, &Limits::default()).expect("valid"),
        model: None,
        strategy: Strategy::Race,
        fanout,
        tags: vec![],
        debug: false,
        stream: false,
        deadline: Duration::from_secs(60),
        rag: false,
    }
}

async fn gateway(n: usize, jitter: f64) -> Gateway {
    let config = GatewayConfig { max_in_flight: 4096, ..GatewayConfig::default() };
    let g = Gateway::new(config, None).await;
    let text = "w ".repeat(WORDS);
    for i in 0..n {
        let e =
            ScriptedEngine::new("m", Script::Fixed(text.clone()), Duration::from_millis(TOKEN_MS))
                .with_parallelism(1)
                .with_jitter(jitter, 1000 + i as u64);
        g.add_worker(Arc::new(LocalWorker::new(
            format!("w{i}"),
            format!("w{i}"),
            Arc::new(e),
            100.0,
        )));
    }
    g
}

async fn ask(g: &Gateway, fanout: usize) -> Duration {
    let started = Instant::now();
    let mut rx = g.run(job(fanout)).await.expect("admitted");
    while let Some(ev) = rx.recv().await {
        match ev {
            JobEvent::Done(_) => return started.elapsed(),
            JobEvent::Error(e) => panic!("{e}"),
            JobEvent::Token(_) | JobEvent::Stage(_) | JobEvent::StageStarted(_) => {}
        }
    }
    panic!("job ended without an answer")
}

async fn throughput(n: usize) -> f64 {
    let g = gateway(n, 0.0).await;
    let total = 48 * n;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..2 * n)
        .map(|_| {
            let (g, next) = (g.clone(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                    ask(&g, 1).await;
                }
            })
        })
        .collect();
    for c in clients {
        c.await.expect("client");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("per request: {WORDS} tokens at {TOKEN_MS} ms/token on a worker that serves one request at a time");
    println!("\nthroughput, fanout 1, 2·N clients");
    println!("{:>3} {:>12} {:>14} {:>8}", "N", "req/s", "N × single", "ratio");
    let single = throughput(1).await;
    for n in [1usize, 2, 4, 8, 16] {
        let r = if n == 1 { single } else { throughput(n).await };
        println!("{n:>3} {r:>12.2} {:>14.2} {:>8.3}", single * n as f64, r / (single * n as f64));
    }

    println!("\nrace latency, fanout N, per-request speed uniform in ±50 %");
    println!("{:>3} {:>12} {:>14} {:>8}", "N", "p50 ms", "expected ms", "ratio");
    let mut single: Vec<f64> = Vec::new();
    for n in [1usize, 2, 4, 8, 16] {
        let g = gateway(n, 0.5).await;
        let mut lat = Vec::new();
        for _ in 0..80 {
            lat.push(ask(&g, n).await.as_secs_f64() * 1000.0);
        }
        if n == 1 {
            single = lat.clone();
        }
        lat.sort_by(f64::total_cmp);
        let p50 = lat[lat.len() / 2];
        let expected = median_of_min(&single, n);
        println!("{n:>3} {p50:>12.1} {expected:>14.1} {:>8.3}", p50 / expected);
    }
}

/// Median, over many resamples, of the minimum of `n` draws from `samples`.
fn median_of_min(samples: &[f64], n: usize) -> f64 {
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut mins: Vec<f64> = (0..4000)
        .map(|_| {
            (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    samples[(state % samples.len() as u64) as usize]
                })
                .fold(f64::INFINITY, f64::min)
        })
        .collect();
    mins.sort_by(f64::total_cmp);
    mins[mins.len() / 2]
}
