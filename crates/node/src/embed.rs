//! Both ends of the embedding protocol ([`nova_p2p::EMBED`]).
//!
//! Worker side: [`serve`] takes requests from its gateway only, holds them to this node's own
//! bounds, runs them on the engine and sends a frame per vector. The gateway keeps its half of
//! the stream open while it waits, so the worker reads it alongside the engine: the stream
//! ending means the gateway gave up, and the engine's work is cancelled.
//!
//! Gateway side: [`ask`] sends a request and holds the reply to what was asked (one vector
//! per input, one width, finite, a model the worker serves), whatever the peer sends.

use std::{sync::Arc, time::Duration};

use futures_util::{AsyncReadExt as _, StreamExt as _};
use nova_engine::{Engine, EngineError};
use nova_p2p::{
    frame,
    wire::{EmbedFrame, EmbedRequest, MAX_EMBED_FRAME},
    Control, PeerId, EMBED,
};
use nova_proto::{
    embed::{decode_f32le, encode_f32le, MAX_EMBED_DIM},
    Embeddings, ErrorKind, Limits,
};
use tokio::sync::{watch, Semaphore};

use crate::DeviceHealth;

/// Embedding requests a worker takes at once; more are refused as busy (the engine's own
/// queue bounds the work, this bounds the streams waiting on it).
const MAX_REQUESTS: usize = 8;
/// Longest a gateway may take to send its request once it opened the stream.
const REQUEST_READ: Duration = Duration::from_secs(10);
/// Longest a worker may take to accept the stream.
const OPEN: Duration = Duration::from_secs(5);
/// Longest silence between two frames of a reply once the first came (they are sent together).
const BETWEEN_FRAMES: Duration = Duration::from_secs(30);

/// Answers embedding requests arriving on `incoming`, from the peer `gateway` names only, on
/// `engine`. Runs until `incoming` ends.
pub(crate) async fn serve(
    mut incoming: nova_p2p::IncomingStreams,
    gateway: watch::Receiver<Option<PeerId>>,
    engine: Arc<dyn Engine>,
    health: Option<watch::Receiver<DeviceHealth>>,
) {
    let running = Arc::new(Semaphore::new(MAX_REQUESTS));
    while let Some((peer, stream)) = incoming.next().await {
        if *gateway.borrow() != Some(peer) {
            tracing::warn!(peer = %peer, "embedding request from a peer that is not our gateway; refused");
            continue;
        }
        // A task sent before the gateway saw a pause is refused so it goes elsewhere.
        let paused =
            health.as_ref().filter(|h| h.borrow().paused).map(|h| h.borrow().reasons.join("; "));
        let permit = running.clone().try_acquire_owned().ok();
        let engine = engine.clone();
        tokio::spawn(async move {
            let _permit = permit.as_ref();
            let refusal = match (&permit, paused) {
                (_, Some(why)) => Some(EngineError::Paused(why)),
                (None, None) => Some(EngineError::QueueFull { capacity: MAX_REQUESTS }),
                (Some(_), None) => None,
            };
            answer(stream, engine, refusal).await
        });
    }
}

fn error_frame(e: &EngineError) -> EmbedFrame {
    EmbedFrame::Error { kind: e.wire_kind(), message: e.to_string() }
}

async fn answer(
    mut stream: nova_p2p::Stream,
    engine: Arc<dyn Engine>,
    refusal: Option<EngineError>,
) {
    let req = match tokio::time::timeout(REQUEST_READ, frame::read::<_, EmbedRequest>(&mut stream))
        .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "bad embedding request; dropped");
            return;
        }
        Err(_) => return,
    };
    // A peer can send any bytes that parse: hold the request to this node's own bounds.
    let checked = req.check(&Limits::default()).map_err(|e| EngineError::Rejected {
        kind: ErrorKind::InvalidRequest,
        message: e.to_string(),
    });
    let reply = match refusal.map_or(checked, Err).and_then(|()| engine.embed(req)) {
        Ok(reply) => reply,
        Err(e) => {
            let _ = frame::write(&mut stream, &error_frame(&e)).await;
            return;
        }
    };
    let mut probe = [0u8; 1];
    let result = tokio::select! {
        r = nova_engine::embeddings(reply) => r,
        // The gateway sends nothing after its request: the stream ending (or anything sent)
        // means it gave up. Returning drops the reply, which cancels the engine's work.
        _ = stream.read(&mut probe) => return,
    };
    let frames = match result {
        Ok(e) => {
            let mut frames: Vec<EmbedFrame> =
                e.vectors.iter().map(|v| EmbedFrame::Vector { f32le: encode_f32le(v) }).collect();
            frames.push(EmbedFrame::Done { model: e.model, prompt_tokens: e.prompt_tokens });
            frames
        }
        Err(e) => vec![error_frame(&e)],
    };
    // A few vectors per write: one flush each would cost a packet each.
    for chunk in frames.chunks(16) {
        if let Err(e) = frame::write_many(&mut stream, chunk).await {
            tracing::debug!(error = %e, "embeddings not delivered");
            return;
        }
    }
}

/// Asks `peer`, which serves `models`, to embed `req`. Cancel-safe: dropping the future closes
/// the stream, which cancels the work on the worker. The caller bounds the total time.
pub(crate) async fn ask(
    mut control: Control,
    peer: PeerId,
    models: Vec<String>,
    req: EmbedRequest,
) -> Result<Embeddings, EngineError> {
    let who = crate::remote::short(&peer);
    let unavailable = |what: String| EngineError::Unavailable(format!("worker {who}: {what}"));
    let mut stream = match tokio::time::timeout(OPEN, control.open_stream(peer, EMBED)).await {
        Err(_) => return Err(unavailable(format!("no embedding stream within {OPEN:?}"))),
        Ok(Err(nova_p2p::OpenStreamError::UnsupportedProtocol(_))) => {
            return Err(EngineError::Unsupported(format!(
                "worker {who} runs a nova without embeddings (older than the {EMBED} protocol)"
            )))
        }
        Ok(Err(e)) => return Err(unavailable(format!("cannot open an embedding stream: {e}"))),
        Ok(Ok(s)) => s,
    };
    frame::write(&mut stream, &req).await.map_err(|e| unavailable(e.to_string()))?;
    let n = req.inputs.len();
    let mut vectors = Vec::with_capacity(n);
    let broken = |e: frame::FrameError| unavailable(format!("embedding stream broke: {e}"));
    let garbage = |what: String| unavailable(format!("sent {what}"));
    loop {
        // The first frame comes once every vector is computed: the caller's deadline bounds it.
        let read = frame::read_max::<_, EmbedFrame>(&mut stream, MAX_EMBED_FRAME);
        let next = if vectors.is_empty() {
            read.await
        } else {
            tokio::time::timeout(BETWEEN_FRAMES, read)
                .await
                .map_err(|_| unavailable(format!("stalled: nothing for {BETWEEN_FRAMES:?}")))?
        };
        match next.map_err(broken)? {
            EmbedFrame::Vector { f32le } => {
                if vectors.len() == n {
                    return Err(garbage(format!("more than {n} vectors")));
                }
                let v = decode_f32le(&f32le, MAX_EMBED_DIM).map_err(|e| garbage(e.to_string()))?;
                vectors.push(v);
            }
            EmbedFrame::Done { model, prompt_tokens } => {
                if !models.contains(&model) {
                    return Err(garbage(format!(
                        "vectors of model {:?}, which it does not serve",
                        model.chars().take(64).collect::<String>()
                    )));
                }
                return Embeddings { model, vectors, prompt_tokens }
                    .checked(n)
                    .map_err(|why| garbage(format!("a bad reply: {why}")));
            }
            EmbedFrame::Error { kind, message } => {
                let mut message = message;
                nova_proto::knowledge::truncate_utf8(&mut message, 1024);
                return Err(EngineError::from_wire(kind, message));
            }
        }
    }
}
