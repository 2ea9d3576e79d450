//! SIGKILL of one of three workers at a random point of a load of concurrent requests.
//!
//! The target: no request notices. A whole request whose worker died is answered by another;
//! a stream continues on another worker from where it stopped, so the client sees one
//! uninterrupted stream, and with greedy decoding the same text as the fault-free run.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use nix::sys::signal::Signal;

use crate::{
    cluster::{self, Gateway},
    load::{Load, Outcome, Stats},
    net,
    report::Row,
    swarm_state, Profile, Rng,
};

const NAMES: [&str; 3] = ["kill-a", "kill-b", "kill-c"];

#[test]
fn a_worker_killed_mid_stream_loses_no_stream() {
    net::block_on(None, scenario(true));
}

#[test]
fn a_worker_killed_under_whole_requests_loses_no_request() {
    net::block_on(None, scenario(false));
}

async fn scenario(stream: bool) {
    let p = Profile::get();
    let what = if stream { "streamed" } else { "whole" };
    let mut rng = Rng::new(&format!("kill/{what}"));
    let gw = Gateway::start("127.0.0.1", &[]);
    let join = format!("127.0.0.1:{}", gw.p2p);
    let mut workers = cluster::start_workers(&NAMES.map(|n| (None, join.as_str(), n))).await;
    cluster::wait_ready(&gw.url, &NAMES, Duration::from_secs(60))
        .await
        .unwrap_or_else(|| panic!("workers not ready; {}", gw.node().tail()));
    // Twice the usual length: generation, not prompt processing, dominates each request, so the
    // killed worker is caught mid-stream.
    let max_tokens = p.max_tokens * 2;
    let load = Load::new(&gw.url, stream, max_tokens);
    let rss_before = gw.rss_kib();

    let mut base = Vec::new();
    for w in 0..p.waves {
        base.extend(load.wave(p.concurrency, w * p.concurrency).await);
    }
    let base_stats = Stats::of(&base);
    let slowest = base.iter().map(|r| r.latency).max().unwrap_or(Duration::from_secs(2));

    // The fault: in the first wave, once a random share of its tokens has streamed (whole
    // requests: at a random share of the fault-free wave's time), kill the busiest worker.
    load.tokens.store(0, Ordering::SeqCst);
    let total = u64::from(max_tokens) * p.concurrency as u64;
    let at_tokens = rng.range(total / 10, total * 6 / 10) as usize;
    let at_time = slowest.mul_f64(rng.range(10, 60) as f64 / 100.0);
    let wave = tokio::spawn({
        let load = load.clone();
        let n = p.concurrency;
        async move { load.wave(n, 0).await }
    });
    let t = Instant::now();
    while !wave.is_finished() && t.elapsed() < Duration::from_secs(60) {
        let due = if stream {
            load.tokens.load(Ordering::SeqCst) >= at_tokens
        } else {
            t.elapsed() >= at_time
        };
        if due {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let view = cluster::swarm(&gw.url).await.unwrap_or_default();
    let deepest = NAMES.iter().map(|n| swarm_state::queue_depth(&view, n)).max().unwrap_or(0);
    let busy: Vec<usize> = (0..NAMES.len())
        .filter(|i| swarm_state::queue_depth(&view, NAMES[*i]) == deepest)
        .collect();
    let victim = busy[rng.range(0, busy.len() as u64) as usize];
    let at = load.tokens.load(Ordering::SeqCst);
    workers[victim].node.signal(Signal::SIGKILL);
    let killed_at = t.elapsed();
    let mut under = wave.await.expect("the wave");
    for w in 1..p.waves {
        under.extend(load.wave(p.concurrency, w * p.concurrency).await);
    }
    let rss_after = gw.rss_kib();
    workers[victim].node.kill();

    let stats = Stats::of(&under);
    // Greedy decoding: a request that completed must say what the fault-free run said.
    let differ = under
        .iter()
        .filter(|r| match (&r.outcome, base.iter().find(|b| b.index == r.index)) {
            (Outcome::Completed { text, .. }, Some(b)) => match &b.outcome {
                Outcome::Completed { text: t0, .. } => t0 != text,
                _ => false,
            },
            _ => false,
        })
        .count();
    let mut row = Row::new(
        &format!("worker killed, {} {what} requests", p.concurrency),
        "SIGKILL 1 of 3 workers mid-generation",
        stats.clone(),
    );
    row.baseline = Some(base_stats.clone());
    row.rss_before_kib = rss_before;
    row.rss_after_kib = rss_after;
    row.notes = format!(
        "killed {} (queue depth {deepest}) at {} ms, {at} tokens streamed; {differ} completed texts differ from the fault-free run",
        NAMES[victim],
        killed_at.as_millis()
    );
    row.check(base_stats.completed == base_stats.sent, "the fault-free run did not complete");
    row.check_no_hang_no_loss();
    row.check(
        stats.completed == stats.sent,
        format!(
            "{} of {} {what} requests did not complete after the kill",
            stats.sent - stats.completed,
            stats.sent
        ),
    );
    row.finish();
}
