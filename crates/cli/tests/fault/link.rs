//! Delay and loss on one worker's link, under load: the worker lives in its own network
//! namespace and reaches the gateway through a delaying proxy; loss is an nftables random drop
//! on its veth (or, without nftables, stalls of about one retransmission timeout in the proxy).
//!
//! The target: every request completes; the slow worker costs latency, not requests.

use std::{sync::Arc, time::Duration};

use crate::{
    cluster::{self, Gateway},
    load::{Load, Record, Stats},
    net::{self, Topology, GATEWAY_IP},
    proxy::Proxy,
    report::Row,
};

const NAMES: [&str; 3] = ["link-a", "link-b", "link-c"];

#[test]
fn a_slow_lossy_link_to_a_worker_loses_no_request() {
    let topo = Arc::new(
        Topology::new()
            .expect("this case needs network namespaces (root and `ip netns`); run it as root"),
    );
    net::block_on(Some(&topo.scenario), scenario(topo.clone()));
}

async fn run(stream: &Load, whole: &Load, n: usize, first: usize) -> Vec<Record> {
    let (a, b) = tokio::join!(stream.wave(n, first), whole.wave(n / 2, first + 500));
    a.into_iter().chain(b).collect()
}

async fn scenario(topo: Arc<Topology>) {
    let p = crate::Profile::get();
    let (delay, loss) = if p.full { (300, 10) } else { (150, 5) };
    let gw = Gateway::start("0.0.0.0", &[]);
    let local = format!("127.0.0.1:{}", gw.p2p);
    let upstream = local.parse().expect("addr");
    let proxy = Proxy::start(&format!("{GATEWAY_IP}:0"), upstream).await;
    let via = proxy.addr.to_string();
    let _workers = cluster::start_workers(&[
        (None, &local, NAMES[0]),
        (None, &local, NAMES[1]),
        (Some(&topo.worker.name), &via, NAMES[2]),
    ])
    .await;
    cluster::wait_ready(&gw.url, &NAMES, Duration::from_secs(60))
        .await
        .unwrap_or_else(|| panic!("workers not ready; {}", gw.node().tail()));
    let stream = Load::new(&gw.url, true, p.max_tokens);
    let whole = Load::new(&gw.url, false, p.max_tokens);
    let rss_before = gw.rss_kib();
    let mut base = Vec::new();
    for w in 0..p.waves {
        base.extend(run(&stream, &whole, p.concurrency, w * p.concurrency).await);
    }

    let how = match topo.add_loss(loss) {
        Ok(()) => {
            proxy.set(Duration::from_millis(delay), 0, Duration::ZERO);
            format!("+{delay} ms each way (proxy), {loss} % packet loss each way (nftables)")
        }
        Err(e) => {
            println!("link: no nftables ({e}); emulating loss as 300 ms stalls in the proxy");
            proxy.set(Duration::from_millis(delay), u64::from(loss), Duration::from_millis(300));
            format!("+{delay} ms each way, {loss} % of chunks stalled 300 ms (proxy; no nftables)")
        }
    };
    let mut under = Vec::new();
    for w in 0..p.waves.max(2) {
        under.extend(run(&stream, &whole, p.concurrency, w * p.concurrency).await);
    }
    let still_ready = cluster::wait_ready(&gw.url, &NAMES, Duration::from_secs(5)).await.is_some();
    let rss_after = gw.rss_kib();

    let stats = Stats::of(&under);
    let mut row = Row::new(
        "slow, lossy link to 1 of 3 workers, streamed + whole requests",
        &how,
        stats.clone(),
    );
    row.baseline = Some(Stats::of(&base));
    row.rss_before_kib = rss_before;
    row.rss_after_kib = rss_after;
    row.notes =
        format!("the slow worker {} ready at the end", if still_ready { "was" } else { "was not" });
    row.check_no_hang_no_loss();
    row.check(
        stats.completed == stats.sent,
        format!("{} of {} requests did not complete", stats.sent - stats.completed, stats.sent),
    );
    row.finish();
}
