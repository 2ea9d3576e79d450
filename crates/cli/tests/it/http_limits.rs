//! HTTP connections are bounded (issue 9, defect 7: 1,000 idle connections were held for
//! 90 s and more): idle connections and half-sent request heads are closed after their
//! timeouts, a streaming response outlives the idle timeout, and connections beyond the cap
//! wait until one closes.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    time::{Duration, Instant},
};

use crate::{spawn_gateway, Proc};

const TOKEN: &str = "http-limits-token";
const SECRET: &str = "http-limits-secret";
/// Idle connections opened at once: enough to show they are all closed, few enough for any
/// machine's descriptor limit.
const IDLE_CONNECTIONS: usize = 100;

fn gateway(extra: &[&str]) -> (Proc, String) {
    let (proc, url, _join) = spawn_gateway(TOKEN, SECRET, extra);
    (proc, url)
}

fn connect(url: &str) -> TcpStream {
    let addr = url.trim_start_matches("http://");
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    s
}

/// Whether the server closed `s`: a read ends (EOF or reset) instead of timing out.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn idle_connections_and_half_sent_heads_are_closed() {
    let (_g, url) = gateway(&["--http-idle-timeout", "1s", "--http-header-timeout", "2s"]);
    let mut idle: Vec<TcpStream> = (0..IDLE_CONNECTIONS).map(|_| connect(&url)).collect();
    // A keep-alive connection that served a request is idle afterwards, too.
    let mut used = connect(&url);
    used.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut head = [0u8; 64];
    let n = used.read(&mut head).expect("answer");
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));
    // A slow loris: half a request head, then nothing.
    let mut loris = connect(&url);
    loris.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").expect("write");

    for (i, s) in idle.iter_mut().enumerate() {
        assert!(closed_by_server(s), "idle connection {i} was not closed within 60 s");
    }
    assert!(closed_by_server(&mut used), "the used keep-alive connection stayed open");
    assert!(closed_by_server(&mut loris), "the half-sent head kept its connection");
}

#[test]
fn the_header_timeout_closes_a_slow_loris_long_before_the_idle_timeout() {
    let (_g, url) = gateway(&["--http-idle-timeout", "10m", "--http-header-timeout", "1s"]);
    let mut loris = connect(&url);
    // Trickle a header byte by byte: each byte arrives, the head never completes.
    let started = Instant::now();
    for b in b"GET /healthz HTTP/1.1\r\nHost: x" {
        if loris.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    assert!(closed_by_server(&mut loris), "a trickled head was not cut off");
}

#[tokio::test]
async fn a_stream_outlives_the_idle_timeout() {
    let (_g, url) = gateway(&["--http-idle-timeout", "1s"]);
    // The swarm feed sends a view at once and then at least every 5 s: a response in
    // progress, quiet for longer than the idle timeout between events.
    let mut feed = reqwest::Client::new()
        .get(format!("{url}/v1/swarm/events"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("feed");
    let mut events = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while events < 2 {
        assert!(Instant::now() < deadline, "only {events} events in 30 s");
        let chunk = tokio::time::timeout(Duration::from_secs(20), feed.chunk())
            .await
            .expect("the feed went silent")
            .expect("the feed was cut")
            .expect("the feed ended");
        events += String::from_utf8_lossy(&chunk).matches("event: swarm").count();
    }
}

#[test]
fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let (_g, url) = gateway(&["--http-max-connections", "2", "--http-idle-timeout", "10m"]);
    let held: Vec<TcpStream> = (0..2).map(|_| connect(&url)).collect();
    // Give the server time to accept both: the third then waits in the backlog.
    std::thread::sleep(Duration::from_millis(500));
    let mut third = connect(&url);
    third.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut buf = [0u8; 64];
    let waited = third.read(&mut buf);
    assert!(waited.is_err(), "answered beyond the cap of 2: {waited:?}");
    drop(held);
    third.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let n = third.read(&mut buf).expect("answered once a slot was free");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}
