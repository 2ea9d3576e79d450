//! What one HTTP connection is doing, for its watchdog: reading a request head (since when),
//! serving requests (how many), or idle (since when).

use std::{
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll},
    time::Instant,
};

use axum::body::{Body, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Timeouts;

#[derive(Debug)]
struct State {
    in_flight: usize,
    head_started: Option<Instant>,
    idle_since: Instant,
}

/// Shared between a connection's IO wrapper, its requests and its watchdog.
#[derive(Debug, Clone)]
pub(crate) struct Activity(Arc<Mutex<State>>);

/// Why the watchdog closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    /// A request head did not arrive whole within the header timeout.
    Header,
    /// No request for the idle timeout.
    Idle,
}

impl Activity {
    pub(crate) fn new(now: Instant) -> Self {
        Self(Arc::new(Mutex::new(State { in_flight: 0, head_started: None, idle_since: now })))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is three plain fields; a panic elsewhere cannot leave them inconsistent.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes arrived: with no request in progress they start the next request's head.
    fn read(&self, now: Instant) {
        let mut s = self.lock();
        if s.in_flight == 0 && s.head_started.is_none() {
            s.head_started = Some(now);
        }
    }

    /// A request head was parsed; the request counts as in progress until the guard (carried
    /// by its response body) is dropped.
    pub(crate) fn begin(&self) -> RequestGuard {
        let mut s = self.lock();
        s.in_flight += 1;
        s.head_started = None;
        RequestGuard(self.clone())
    }

    /// Whether the connection should be closed at `now`.
    pub(crate) fn expired(&self, now: Instant, t: Timeouts) -> Option<Expired> {
        let s = self.lock();
        if s.in_flight > 0 {
            return None;
        }
        match s.head_started {
            Some(at) if now.saturating_duration_since(at) >= t.header => Some(Expired::Header),
            Some(_) => None,
            None if now.saturating_duration_since(s.idle_since) >= t.idle => Some(Expired::Idle),
            None => None,
        }
    }
}

/// A request in progress; dropping it (the response body is done or dropped) ends it.
#[derive(Debug)]
pub(crate) struct RequestGuard(Activity);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.in_flight == 0 {
            s.idle_since = Instant::now();
            s.head_started = None;
        }
    }
}

/// The connection's socket, reporting reads to its [`Activity`].
#[derive(Debug)]
pub(crate) struct Tracked<S> {
    inner: S,
    activity: Activity,
}

impl<S> Tracked<S> {
    pub(crate) fn new(inner: S, activity: Activity) -> Self {
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read(Instant::now());
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A response body that holds its request's [`RequestGuard`] until it is done.
#[derive(Debug)]
pub(crate) struct Guarded {
    inner: Body,
    _guard: RequestGuard,
}

impl Guarded {
    pub(crate) fn new(inner: Body, guard: RequestGuard) -> Self {
        Self { inner, _guard: guard }
    }
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const T: Timeouts = Timeouts { header: Duration::from_secs(2), idle: Duration::from_secs(5) };

    #[test]
    fn idle_then_half_a_head_then_a_request_in_progress() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let a = Activity::new(t0);
        assert_eq!(a.expired(s(4), T), None);
        assert_eq!(a.expired(s(5), T), Some(Expired::Idle));
        // Half a head at 4 s: the header clock runs from there, the idle one no longer.
        a.read(s(4));
        assert_eq!(a.expired(s(5), T), None);
        assert_eq!(a.expired(s(6), T), Some(Expired::Header));
        // The head completes: a request in progress is never expired, however long.
        let guard = a.begin();
        a.read(s(7));
        assert_eq!(a.expired(s(1000), T), None);
        drop(guard);
        let later = Instant::now();
        assert_eq!(a.expired(later, T), None);
        assert_eq!(a.expired(later + T.idle, T), Some(Expired::Idle));
    }
}
