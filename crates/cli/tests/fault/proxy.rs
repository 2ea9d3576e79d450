//! A userspace TCP proxy between a worker and the gateway that delays every chunk by a fixed
//! time in each direction (this kernel has no netem qdisc). It can also emulate loss as stalls
//! of about one retransmission timeout, for machines without nftables; bytes are never dropped
//! (TCP would retransmit them), only held back, in order.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    task::{JoinHandle, JoinSet},
    time::Instant,
};

/// What the proxy does to the bytes; changed while it runs.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Added to every chunk, each direction, in ms.
    delay_ms: AtomicU64,
    /// Chance in percent that a chunk is held back by `stall_ms` (emulated loss).
    stall_pct: AtomicU64,
    /// How long a "lost" chunk is held back (about one TCP retransmission timeout), in ms.
    stall_ms: AtomicU64,
}

impl Faults {
    fn delay(&self, roll: u64) -> Duration {
        let mut ms = self.delay_ms.load(Ordering::Relaxed);
        if roll % 100 < self.stall_pct.load(Ordering::Relaxed) {
            ms += self.stall_ms.load(Ordering::Relaxed);
        }
        Duration::from_millis(ms)
    }
}

/// A running proxy; dropping it closes the listener and every connection.
pub(crate) struct Proxy {
    /// Where workers connect.
    pub(crate) addr: SocketAddr,
    faults: Arc<Faults>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Listens on `listen` (an address inside the scenario's namespace or 127.0.0.1, port 0)
    /// and forwards every connection to `upstream`.
    pub(crate) async fn start(listen: &str, upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind(listen).await.expect("bind the proxy");
        let addr = listener.local_addr().expect("addr");
        let faults = Arc::new(Faults::default());
        let shared = faults.clone();
        let task = tokio::spawn(async move {
            // Owned here, so aborting the accept loop aborts every connection too.
            let mut conns = JoinSet::new();
            let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(addr.port());
            loop {
                let Ok((down, _)) = listener.accept().await else { continue };
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                // Bounded: a worker opens one connection at a time, plus retries.
                if conns.len() >= 64 {
                    while conns.try_join_next().is_some() {}
                    if conns.len() >= 64 {
                        continue;
                    }
                }
                conns.spawn(connection(down, upstream, shared.clone(), seed));
            }
        });
        Self { addr, faults, task }
    }

    /// From now on, delays every chunk by `delay` and holds back `stall_pct` % of them by a
    /// further `stall`.
    pub(crate) fn set(&self, delay: Duration, stall_pct: u64, stall: Duration) {
        self.faults.delay_ms.store(delay.as_millis() as u64, Ordering::Relaxed);
        self.faults.stall_pct.store(stall_pct, Ordering::Relaxed);
        self.faults.stall_ms.store(stall.as_millis() as u64, Ordering::Relaxed);
    }
}

async fn connection(down: TcpStream, upstream: SocketAddr, faults: Arc<Faults>, seed: u64) {
    let Ok(up) = TcpStream::connect(upstream).await else { return };
    let _ = down.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let (dr, dw) = down.into_split();
    let (ur, uw) = up.into_split();
    // When either direction ends, the other is dropped too: the connection closes as a whole.
    tokio::select! {
        () = pipe(dr, uw, faults.clone(), seed) => {}
        () = pipe(ur, dw, faults, seed.rotate_left(17)) => {}
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    faults: Arc<Faults>,
    mut seed: u64,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let read = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let due = Instant::now() + faults.delay(seed);
                    if tx.send((due, buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let write = async move {
        // In order: a stalled chunk holds back the ones behind it, as TCP does.
        let mut not_before = Instant::now();
        while let Some((due, bytes)) = rx.recv().await {
            not_before = not_before.max(due);
            tokio::time::sleep_until(not_before).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    // The writer drains what the reader queued before the end.
    let (_, ()) = tokio::join!(read, write);
}
