//! The two ends of a ggml-rpc connection carried over another transport.
//!
//! - [`Link::bridge`], on the head: the socket ggml-rpc's client writes to is bridged frame by
//!   frame to the shard's transport. It counts every frame and round trip, and when the shard
//!   goes (closed, timed out, broke the protocol) it answers every request in the shard's place
//!   with a reply of the size the client waits for. ggml-rpc's client aborts the whole process
//!   on any I/O error, so the client's socket is never closed under it; the engine learns of the
//!   loss from [`Link::lost`] after each decode instead.
//! - [`shard`], on the shard: frames from the head are checked against the protocol and
//!   nova's bounds before they reach the ggml-rpc server (a child process).

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use crate::wire::{self, cmd, FrameLimits, Reply};

/// Payloads up to this size are read whole (they are parsed or small); larger ones (weights,
/// graphs) are passed through in pieces of this size.
const CHUNK: usize = 64 << 10;

/// Counters of one link, summed over its connections.
#[derive(Debug, Default)]
struct Counters {
    frames: [AtomicU64; cmd::COUNT as usize],
    bytes_to_shard: AtomicU64,
    bytes_from_shard: AtomicU64,
    round_trips: AtomicU64,
    connections: AtomicU64,
}

/// A copy of a link's counters at one moment; subtract two to measure a stretch of work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Traffic {
    /// Requests per command code (see [`wire::name`]).
    pub frames: [u64; cmd::COUNT as usize],
    /// Bytes the head sent, headers included.
    pub bytes_to_shard: u64,
    /// Bytes the shard sent back, headers included.
    pub bytes_from_shard: u64,
    /// Requests whose reply the head waited for: each costs one network round trip.
    pub round_trips: u64,
    /// Connections ggml-rpc opened.
    pub connections: u64,
}

impl std::ops::Sub for Traffic {
    type Output = Traffic;
    fn sub(self, before: Traffic) -> Traffic {
        let mut frames = self.frames;
        for (f, b) in frames.iter_mut().zip(before.frames) {
            *f = f.saturating_sub(b);
        }
        Traffic {
            frames,
            bytes_to_shard: self.bytes_to_shard.saturating_sub(before.bytes_to_shard),
            bytes_from_shard: self.bytes_from_shard.saturating_sub(before.bytes_from_shard),
            round_trips: self.round_trips.saturating_sub(before.round_trips),
            connections: self.connections.saturating_sub(before.connections),
        }
    }
}

/// One shard as its head sees it.
#[derive(Debug)]
pub struct Link {
    name: String,
    limits: FrameLimits,
    reply_timeout: Duration,
    counters: Counters,
    lost: Mutex<Option<String>>,
}

impl Link {
    /// A link to the shard called `name` (for messages). A reply slower than `reply_timeout`
    /// counts the shard as lost; it must exceed the longest compute the shard is given.
    pub fn new(name: impl Into<String>, limits: FrameLimits, reply_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            limits,
            reply_timeout,
            counters: Counters::default(),
            lost: Mutex::new(None),
        })
    }

    /// The shard's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Why the shard is lost, once it is: from then on its answers are stand-ins.
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Records that the shard is gone (the first reason wins).
    pub fn mark_lost(&self, why: impl Into<String>) {
        let mut lost = self.lost.lock().unwrap_or_else(PoisonError::into_inner);
        if lost.is_none() {
            let why = why.into();
            tracing::warn!(shard = %self.name, %why, "shard lost");
            *lost = Some(why);
        }
    }

    /// The counters now.
    pub fn traffic(&self) -> Traffic {
        let c = &self.counters;
        let mut frames = [0; cmd::COUNT as usize];
        for (f, a) in frames.iter_mut().zip(&c.frames) {
            *f = a.load(Ordering::Relaxed);
        }
        Traffic {
            frames,
            bytes_to_shard: c.bytes_to_shard.load(Ordering::Relaxed),
            bytes_from_shard: c.bytes_from_shard.load(Ordering::Relaxed),
            round_trips: c.round_trips.load(Ordering::Relaxed),
            connections: c.connections.load(Ordering::Relaxed),
        }
    }

    /// The socket for one new ggml-rpc connection (what a [`crate::Route`] returns): its other
    /// end is bridged, on `rt`, to the transport `open` yields. When `open` fails the shard is
    /// lost and the connection is answered with stand-ins.
    pub fn bridge<F, Fut, S>(
        self: &Arc<Self>,
        rt: &tokio::runtime::Handle,
        open: F,
    ) -> io::Result<OwnedFd>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<S>> + Send,
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (ggml, ours) = std::os::unix::net::UnixStream::pair()?;
        ours.set_nonblocking(true)?;
        self.counters.connections.fetch_add(1, Ordering::Relaxed);
        let link = self.clone();
        rt.spawn(async move {
            let ours = match tokio::net::UnixStream::from_std(ours) {
                Ok(s) => s,
                Err(e) => return link.mark_lost(format!("bridge socket: {e}")),
            };
            let shard = if link.lost().is_some() {
                None
            } else {
                match tokio::time::timeout(link.reply_timeout, open()).await {
                    Ok(Ok(s)) => Some(tokio::io::split(s)),
                    Ok(Err(e)) => {
                        link.mark_lost(format!("could not reach it: {e}"));
                        None
                    }
                    Err(_) => {
                        link.mark_lost("could not reach it in time");
                        None
                    }
                }
            };
            link.head(ours, shard).await;
        });
        Ok(ggml.into())
    }

    /// Follows one connection until ggml-rpc's client closes it.
    async fn head<G, S>(&self, ggml: G, mut shard: Option<(ReadHalf<S>, WriteHalf<S>)>)
    where
        G: AsyncRead + AsyncWrite + Unpin,
        S: AsyncRead + AsyncWrite,
    {
        let (mut gr, mut gw) = tokio::io::split(ggml);
        let mut header = [0u8; 9];
        let mut payload = Vec::new();
        loop {
            if gr.read_exact(&mut header).await.is_err() {
                return; // the client closed this connection
            }
            if self.lost().is_some() {
                shard = None;
            }
            let size = u64::from_le_bytes(header[1..].try_into().expect("8 bytes"));
            let req = match wire::request(header[0], size, &self.limits) {
                Ok(r) => r,
                Err(e) => {
                    // Our own client: only a tensor beyond the limits gets here. The stream
                    // cannot be followed past a frame it cannot size, so this ends it.
                    self.mark_lost(format!("the head sent {e}"));
                    return;
                }
            };
            self.counters.frames[usize::from(req.cmd)].fetch_add(1, Ordering::Relaxed);
            self.counters.bytes_to_shard.fetch_add(9 + size, Ordering::Relaxed);

            // The request: passed on while the shard is there, read and dropped after.
            let parsed = size as usize <= CHUNK;
            if parsed {
                payload.resize(size as usize, 0);
                if gr.read_exact(&mut payload).await.is_err() {
                    return;
                }
                if let Some((_, w)) = shard.as_mut() {
                    let sent = self.timed(async {
                        w.write_all(&header).await?;
                        w.write_all(&payload).await?;
                        w.flush().await
                    });
                    if let Err(e) = sent.await {
                        self.mark_lost(format!("sending to it failed: {e}"));
                        shard = None;
                    }
                }
            } else {
                if let Some((_, w)) = shard.as_mut() {
                    if let Err(e) = self.timed(w.write_all(&header)).await {
                        self.mark_lost(format!("sending to it failed: {e}"));
                        shard = None;
                    }
                }
                let mut left = size;
                let mut buf = vec![0u8; CHUNK];
                while left > 0 {
                    let n = left.min(CHUNK as u64) as usize;
                    if gr.read_exact(&mut buf[..n]).await.is_err() {
                        return;
                    }
                    left -= n as u64;
                    if let Some((_, w)) = shard.as_mut() {
                        if let Err(e) = self.timed(w.write_all(&buf[..n])).await {
                            self.mark_lost(format!("sending to it failed: {e}"));
                            shard = None;
                        }
                    }
                }
                if let Some((_, w)) = shard.as_mut() {
                    if let Err(e) = self.timed(w.flush()).await {
                        self.mark_lost(format!("sending to it failed: {e}"));
                        shard = None;
                    }
                }
            }

            // The reply, if the client waits for one.
            let want = match req.reply {
                Reply::None => continue,
                Reply::Fixed(n) => n,
                Reply::TensorData => match wire::tensor_reply_size(&payload, &self.limits) {
                    Ok(n) => n,
                    Err(e) => {
                        self.mark_lost(format!("the head sent {e}"));
                        return;
                    }
                },
            };
            self.counters.round_trips.fetch_add(1, Ordering::Relaxed);
            let reply = match shard.as_mut() {
                Some((r, _)) => {
                    match self.timed(read_reply(r, req.cmd, want)).await.and_then(|mut v| {
                        wire::check_reply(req.cmd, &payload, &mut v)
                            .map(|()| v)
                            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
                    }) {
                        Ok(v) => v,
                        Err(e) => {
                            self.mark_lost(format!("its reply failed: {e}"));
                            shard = None;
                            wire::stand_in_reply(req.cmd, want)
                        }
                    }
                }
                None => wire::stand_in_reply(req.cmd, want),
            };
            self.counters.bytes_from_shard.fetch_add(8 + want, Ordering::Relaxed);
            if gw.write_all(&want.to_le_bytes()).await.is_err()
                || gw.write_all(&reply).await.is_err()
                || gw.flush().await.is_err()
            {
                return;
            }
        }
    }

    async fn timed<T>(&self, f: impl Future<Output = io::Result<T>>) -> io::Result<T> {
        tokio::time::timeout(self.reply_timeout, f).await.unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no progress in {} s", self.reply_timeout.as_secs_f32()),
            ))
        })
    }
}

async fn read_reply<R: AsyncRead>(r: &mut ReadHalf<R>, cmd: u8, want: u64) -> io::Result<Vec<u8>> {
    let got = r.read_u64_le().await?;
    if got != want {
        let e = wire::WireError::BadReply { cmd, expected: want, got };
        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
    }
    let mut v = vec![0u8; want as usize];
    r.read_exact(&mut v).await?;
    Ok(v)
}

/// Why a shard ended its session.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The head sent a frame outside the protocol or the bounds: the session is ended.
    #[error("refused a frame from the head: {0}")]
    Refused(wire::WireError),
    /// The first frame was not HELLO.
    #[error("the head's first frame was not HELLO")]
    NoHello,
    /// A transport error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Carries one session between the head's transport and the local ggml-rpc server's socket,
/// checking every frame from the head first, and holding the buffers the server allocates to
/// `budget` bytes: an allocation past it gets a null buffer without reaching the server, which
/// llama.cpp on the head reports as a failed allocation. Returns when either side ends; an
/// error means the head broke the protocol or the bounds (or the server did), and the server
/// process should be ended.
pub async fn shard<H, C>(
    head: H,
    server: C,
    limits: FrameLimits,
    budget: u64,
) -> Result<(), ShardError>
where
    H: AsyncRead + AsyncWrite,
    C: AsyncRead + AsyncWrite,
{
    let (mut hr, mut hw) = tokio::io::split(head);
    let (mut sr, mut sw) = tokio::io::split(server);
    let mut header = [0u8; 9];
    let mut payload = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    // Buffers the server holds for this session: remote pointer -> bytes.
    let mut buffers = std::collections::HashMap::<u64, u64>::new();
    let mut held = 0u64;
    let mut first = true;
    loop {
        if hr.read_exact(&mut header).await.is_err() {
            return Ok(()); // the head closed
        }
        if first && header[0] != cmd::HELLO {
            return Err(ShardError::NoHello);
        }
        first = false;
        let size = u64::from_le_bytes(header[1..].try_into().expect("8 bytes"));
        let req = wire::request(header[0], size, &limits).map_err(ShardError::Refused)?;
        let small = size as usize <= CHUNK;
        if small {
            payload.resize(size as usize, 0);
            hr.read_exact(&mut payload).await?;
        }
        // The reply's size is known (and a read's checked) before the server sees the request.
        let reply = match req.reply {
            Reply::None => None,
            Reply::Fixed(n) => Some(n),
            Reply::TensorData => {
                Some(wire::tensor_reply_size(&payload, &limits).map_err(ShardError::Refused)?)
            }
        };
        match req.cmd {
            cmd::ALLOC_BUFFER => {
                let want = u64::from_le_bytes(payload[4..12].try_into().expect("12 bytes"));
                if held.saturating_add(want) > budget {
                    tracing::warn!(
                        want,
                        held,
                        budget,
                        "a buffer past this shard's --max-ram; refused"
                    );
                    hw.write_all(&16u64.to_le_bytes()).await?;
                    hw.write_all(&[0u8; 16]).await?;
                    hw.flush().await?;
                    continue;
                }
            }
            cmd::FREE_BUFFER => {
                let ptr = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
                held -= buffers.remove(&ptr).unwrap_or(0);
            }
            _ => {}
        }
        sw.write_all(&header).await?;
        if small {
            sw.write_all(&payload).await?;
        } else {
            let mut left = size;
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                hr.read_exact(&mut buf[..n]).await?;
                sw.write_all(&buf[..n]).await?;
                left -= n as u64;
            }
        }
        sw.flush().await?;
        let Some(want) = reply else { continue };
        let got = sr.read_u64_le().await?;
        if got != want {
            let e = wire::WireError::BadReply { cmd: req.cmd, expected: want, got };
            return Err(ShardError::Io(io::Error::new(io::ErrorKind::InvalidData, e)));
        }
        hw.write_all(&got.to_le_bytes()).await?;
        if req.cmd == cmd::ALLOC_BUFFER {
            let mut reply = [0u8; 16];
            sr.read_exact(&mut reply).await?;
            let ptr = u64::from_le_bytes(reply[..8].try_into().expect("8 bytes"));
            let bytes = u64::from_le_bytes(reply[8..].try_into().expect("8 bytes"));
            if ptr != 0 {
                held += bytes;
                buffers.insert(ptr, bytes);
            }
            hw.write_all(&reply).await?;
        } else {
            tokio::io::copy(&mut (&mut sr).take(want), &mut hw).await?;
        }
        hw.flush().await?;
    }
}
