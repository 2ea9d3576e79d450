//! One HTTP/1 connection: hyper drives the protocol, the API router answers, and a watchdog
//! closes the connection when its [`Activity`] says it is idle or too slow with a request head.

use std::{convert::Infallible, net::SocketAddr, time::Instant};

use axum::{body::Body, Router};
use hyper::{body::Incoming, server::conn::http1, Request};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpStream, sync::OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::{
    activity::{Activity, Expired, Guarded, Tracked},
    Timeouts,
};

/// Serves requests on `stream` until the client closes it, the watchdog does, or `cancel`
/// fires (then the request in progress may finish; the server bounds how long). `permit` is
/// the connection's slot, released when this returns.
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    t: Timeouts,
    cancel: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let activity = Activity::new(Instant::now());
    let io = TokioIo::new(Tracked::new(stream, activity.clone()));
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |req: Request<Incoming>| {
            let guard = activity.begin();
            let app = app.clone();
            async move {
                let resp = match app.oneshot(req.map(Body::new)).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(resp.map(|b| Body::new(Guarded::new(b, guard))))
            }
        }
    });
    // hyper's own header timeout would also close idle keep-alive connections after it; the
    // watchdog below tells the two apart, so it is off here.
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut check = tokio::time::interval(check_every(t));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            () = cancel.cancelled(), if !closing => {
                // Finishes the response in progress, then closes; an idle connection closes now.
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = check.tick() => match activity.expired(Instant::now(), t) {
                // Nothing is in progress in either case, so dropping the connection loses nothing.
                Some(Expired::Header) => {
                    tracing::debug!(%peer, "no complete request head in {:?}; closing", t.header);
                    return;
                }
                Some(Expired::Idle) => {
                    tracing::debug!(%peer, "idle for {:?}; closing", t.idle);
                    return;
                }
                None => {}
            },
        }
    }
}

/// How often the watchdog looks: a quarter of the shorter timeout, within [10 ms, 1 s].
fn check_every(t: Timeouts) -> std::time::Duration {
    (t.header.min(t.idle) / 4)
        .clamp(std::time::Duration::from_millis(10), std::time::Duration::from_secs(1))
}
