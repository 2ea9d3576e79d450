//! The gateway restarted (SIGTERM, then started again on the same ports and data dir) under a
//! sustained load of streamed and whole requests.
//!
//! The target: requests in flight at the SIGTERM finish or end with an error event, requests
//! sent while it is down are refused (the client knows), nothing hangs or is cut off silently,
//! and the workers rejoin the new gateway by themselves.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::{
    cluster::{self, Gateway},
    load::{Load, Outcome, Stats},
    net,
    report::Row,
    Rng,
};

const NAMES: [&str; 3] = ["restart-a", "restart-b", "restart-c"];

#[test]
fn a_gateway_restart_under_load_loses_no_request_and_workers_rejoin() {
    net::block_on(None, scenario());
}

async fn scenario() {
    let p = crate::Profile::get();
    let mut rng = Rng::new("restart");
    let gw = Gateway::start("127.0.0.1", &[]);
    let join = format!("127.0.0.1:{}", gw.p2p);
    let _workers = cluster::start_workers(&NAMES.map(|n| (None, join.as_str(), n))).await;
    cluster::wait_ready(&gw.url, &NAMES, Duration::from_secs(60))
        .await
        .unwrap_or_else(|| panic!("workers not ready; {}", gw.node().tail()));
    let url = gw.url.clone();
    let stream = Load::new(&url, true, p.max_tokens);
    let whole = Load::new(&url, false, p.max_tokens);
    let rss_before = gw.rss_kib();
    let span = Duration::from_secs(if p.full { 20 } else { 6 });
    let (a, b) = tokio::join!(stream.sustained(4, span, 400), whole.sustained(2, span, 200));
    let base: Vec<_> = a.into_iter().chain(b).collect();

    let span = Duration::from_secs(if p.full { 40 } else { 24 });
    let load = tokio::spawn({
        let (stream, whole) = (stream.clone(), whole.clone());
        async move {
            let (a, b) =
                tokio::join!(stream.sustained(4, span, 400), whole.sustained(2, span, 200));
            a.into_iter().chain(b).collect::<Vec<_>>()
        }
    });
    tokio::time::sleep(Duration::from_millis(rng.range(2000, 5000))).await;
    let gw = Arc::new(Mutex::new(gw));
    let (stopped, started) = tokio::task::spawn_blocking({
        let gw = gw.clone();
        move || gw.lock().expect("lock").restart()
    })
    .await
    .expect("restart");
    let rejoined = cluster::wait_ready(&url, &NAMES, Duration::from_secs(30)).await;
    let mut under = load.await.expect("the load");
    let after = whole.wave(p.concurrency, 1000).await;
    let after_ok = after.iter().all(|r| matches!(r.outcome, Outcome::Completed { .. }));
    under.extend(after);
    let rss_after = gw.lock().expect("lock").rss_kib();

    let stats = Stats::of(&under);
    let mut row = Row::new(
        "gateway restarted, streamed + whole requests",
        "SIGTERM, start again on the same ports and data dir",
        stats.clone(),
    );
    row.baseline = Some(Stats::of(&base));
    row.rss_before_kib = rss_before;
    row.rss_after_kib = rss_after;
    row.notes = format!(
        "exited {} ms after SIGTERM, listening again {} ms later; workers ready again {}",
        stopped.as_millis(),
        started.as_millis(),
        match rejoined {
            Some(t) => format!("{} ms after the start", t.as_millis()),
            None => "never (30 s)".into(),
        }
    );
    row.check_no_hang_no_loss();
    row.check(rejoined.is_some(), "the workers did not rejoin within 30 s");
    row.check(after_ok, "requests after the restart failed");
    row.finish();
}
