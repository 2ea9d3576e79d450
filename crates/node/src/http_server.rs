//! The gateway's HTTP listener: the API router served over HTTP/1 with bounded connections,
//! a header-read timeout, an idle timeout and a bounded graceful shutdown.
//!
//! `axum::serve` has no knobs for these, so the accept loop is ours (mini-redis style): a
//! semaphore permit is taken before each `accept`, so at most `max_connections` are open and
//! the rest wait in the kernel's backlog. Each connection runs in the server's `JoinSet`
//! (`conn.rs`), where a watchdog closes it when it is idle or dawdles over a request head.

mod activity;
mod conn;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::Router;
use tokio::{net::TcpListener, sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;

/// HTTP settings of a gateway.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Address to listen on (port 0 picks a free one).
    pub bind: SocketAddr,
    /// A request head (request line and headers) must arrive within this once its first byte
    /// did; a slower client is disconnected.
    pub header_timeout: Duration,
    /// A connection with no request in progress is closed after this long. A response in
    /// progress (an SSE stream included) is never cut by it.
    pub idle_timeout: Duration,
    /// Connections open at once; more wait in the kernel's backlog until one closes.
    pub max_connections: usize,
    /// On shutdown, how long responses in progress may take to finish before their
    /// connections are closed.
    pub shutdown_grace: Duration,
    /// Browser origins allowed to call the API (CORS); empty allows none.
    pub cors_origins: Vec<axum::http::HeaderValue>,
}

impl HttpConfig {
    /// Defaults on `bind`: 10 s for a request head, 60 s idle, 1,024 connections, 5 s grace.
    pub fn new(bind: SocketAddr) -> Self {
        Self {
            bind,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(5),
            cors_origins: Vec::new(),
        }
    }
}

/// Limits one connection lives under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) header: Duration,
    pub(crate) idle: Duration,
}

/// Serves `app` on `listener` until `cancel` fires, then lets responses in progress finish
/// for at most `config.shutdown_grace` and closes whatever is left. Cancel-safe only through
/// `cancel`: dropping the future drops every connection at once.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    config: HttpConfig,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let timeouts = Timeouts { header: config.header_timeout, idle: config.idle_timeout };
    let mut conns = JoinSet::new();
    loop {
        let permit = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        conns.spawn(conn::serve(stream, peer, app.clone(), timeouts, cancel.clone(), permit));
    }
    drop(listener);
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = conns.len(),
            "responses still running {} s after shutdown began; closing their connections",
            config.shutdown_grace.as_secs_f64()
        );
        conns.shutdown().await;
    }
}
