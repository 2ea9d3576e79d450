//! The swarm's state under abuse: overload (50 concurrent streams on three workers), worker
//! churn (start/stop cycles), a second gateway on a taken p2p port, and 1,000 idle HTTP
//! connections.

use std::time::{Duration, Instant};

use crate::{
    cluster::{self, Gateway},
    load::{Load, Outcome, Stats},
    net,
    report::Row,
    swarm_state,
};

#[test]
fn fifty_concurrent_streams_on_three_workers_are_served_or_refused_with_429_before_the_200() {
    net::block_on(None, async {
        const NAMES: [&str; 3] = ["over-a", "over-b", "over-c"];
        let gw = Gateway::start("127.0.0.1", &[]);
        let join = format!("127.0.0.1:{}", gw.p2p);
        let _workers = cluster::start_workers(&NAMES.map(|n| (None, join.as_str(), n))).await;
        cluster::wait_ready(&gw.url, &NAMES, Duration::from_secs(60))
            .await
            .unwrap_or_else(|| panic!("workers not ready; {}", gw.node().tail()));
        let load = Load::new(&gw.url, true, 16);
        let rss_before = gw.rss_kib();
        let base = load.wave(3, 0).await;
        let under = load.wave(50, 0).await;
        let rss_after = gw.rss_kib();
        let stats = Stats::of(&under);
        let in_stream = under
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::CleanError { status: 200, .. }))
            .count();
        let bare = under
            .iter()
            .filter(|r| match &r.outcome {
                Outcome::CleanError { status, retry_after, .. } => {
                    *status != 200 && !(*status == 429 && *retry_after)
                }
                _ => false,
            })
            .count();
        let mut row = Row::new("50 concurrent streams on 3 workers (overload)", "load", stats);
        row.baseline = Some(Stats::of(&base));
        row.rss_before_kib = rss_before;
        row.rss_after_kib = rss_after;
        row.notes = format!("{in_stream} failed inside a 200 stream; {bare} refused other than 429 + Retry-After; no-fault p99 is 3 streams at once");
        row.check_no_hang_no_loss();
        row.check(in_stream == 0, format!("{in_stream} streams got 200 and then an error"));
        row.check(bare == 0, format!("{bare} refusals were not 429 with Retry-After"));
        row.finish();
    });
}

#[test]
fn departed_workers_are_forgotten_after_churn() {
    net::block_on(None, async {
        let p = crate::Profile::get();
        let (gw, flag) = match Gateway::try_start("127.0.0.1", &["--forget-after", "3s"]) {
            Ok(g) => (g, true),
            // main before the fix: no such flag; measure what it does without it.
            Err(e) => {
                println!("churn: the gateway refused --forget-after: {e}");
                (Gateway::start("127.0.0.1", &[]), false)
            }
        };
        let join = format!("127.0.0.1:{}", gw.p2p);
        let rss_before = gw.rss_kib();
        let t = Instant::now();
        let mut cycles = 0;
        // Two at a time: each cycle loads the model once.
        for pair in 0..p.churn.div_ceil(2) {
            let names: Vec<String> = (0..2).map(|i| format!("churn-{}", pair * 2 + i)).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut ws =
                cluster::start_workers(&[(None, &join, refs[0]), (None, &join, refs[1])]).await;
            cluster::wait_ready(&gw.url, &refs, Duration::from_secs(60))
                .await
                .unwrap_or_else(|| panic!("churn workers not ready; {}", gw.node().tail()));
            for w in &mut ws {
                w.node.kill();
            }
            cycles += 2;
        }
        let churned = t.elapsed();
        // Past the staleness window (1.5 s) and the forget-after (3 s), with a margin.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let view = cluster::swarm(&gw.url).await.unwrap_or_default();
        let listed = swarm_state::listed(&view);
        let mut row = Row::new(&format!("{cycles} worker start/stops"), "churn", Stats::default());
        row.rss_before_kib = rss_before;
        row.rss_after_kib = gw.rss_kib();
        row.notes = format!(
            "{listed} departed workers still listed 6 s after the last stop{}; churn took {} s",
            if flag { " (--forget-after 3s)" } else { " (no --forget-after flag)" },
            churned.as_secs()
        );
        row.check(flag, "the gateway has no --forget-after");
        row.check(listed == 0, format!("{listed} departed workers are still listed"));
        row.finish();
    });
}

#[test]
fn a_second_serve_on_a_taken_p2p_port_fails_at_start_without_a_model() {
    net::block_on(None, async {
        let first = Gateway::start("127.0.0.1", &[]);
        let home = cluster::home();
        let args: Vec<String> = [
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--p2p-listen",
            &format!("/ip4/127.0.0.1/tcp/{}", first.p2p),
            "--no-local",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let t = Instant::now();
        let mut second = cluster::serve(home.path(), "second", &args);
        let exit = second.wait_exit(Duration::from_secs(15));
        let took = t.elapsed();
        let said = second.tail();
        let mut row = Row::new(
            "a second `nova serve` on the same p2p port",
            "bad configuration",
            Stats::default(),
        );
        row.notes = match exit {
            Some(s) => {
                format!("exited ({s}) after {} ms; {}", took.as_millis(), said.replace('\n', " "))
            }
            None => "still running after 15 s, sharing the port".into(),
        };
        row.check(exit.is_some_and(|s| !s.success()), "the second gateway did not fail at start");
        row.check(
            said.contains(&first.p2p.to_string()),
            "its message does not name the taken port",
        );
        row.finish();
    });
}

#[test]
fn a_thousand_idle_connections_are_closed_without_a_model() {
    net::block_on(None, async {
        let p = crate::Profile::get();
        let gw = Gateway::start("127.0.0.1", &[]);
        let addr = gw.url.trim_start_matches("http://").to_string();
        let rss_before = gw.rss_kib();
        let mut conns = Vec::new();
        for _ in 0..1000 {
            match tokio::net::TcpStream::connect(&addr).await {
                Ok(c) => conns.push(c),
                Err(_) => break,
            }
        }
        let opened = conns.len();
        let t = Instant::now();
        let limit = Duration::from_secs(if p.full { 120 } else { 65 });
        let mut closed_at = None;
        let mut worst_health = Duration::ZERO;
        let mut health_failed = 0;
        let mut open = opened;
        while t.elapsed() < limit {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let h = Instant::now();
            let ok = reqwest::Client::new()
                .get(format!("{}/healthz", gw.url))
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            worst_health = worst_health.max(h.elapsed());
            health_failed += usize::from(!ok);
            open = conns
                .iter()
                .filter(|c| {
                    let mut b = [0u8; 1];
                    matches!(c.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
                })
                .count();
            if open == 0 {
                closed_at = Some(t.elapsed());
                break;
            }
        }
        let rss_after = gw.rss_kib();
        drop(conns);
        let mut row = Row::new(
            &format!("{opened} idle HTTP connections"),
            "clients that send nothing",
            Stats::default(),
        );
        row.rss_before_kib = rss_before;
        row.rss_after_kib = rss_after;
        row.notes = format!(
            "{}; /healthz meanwhile: slowest {} ms, {health_failed} failed",
            match closed_at {
                Some(c) => format!("all closed by the gateway after {} s", c.as_secs()),
                None => format!("{open} still open after {} s", limit.as_secs()),
            },
            worst_health.as_millis()
        );
        row.check(
            closed_at.is_some(),
            format!("{open} idle connections still open after {} s", limit.as_secs()),
        );
        row.check(health_failed == 0, "/healthz failed while the idle connections were held");
        row.finish();
    });
}
