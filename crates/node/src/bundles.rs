//! Gateway side of self-update: the shelf of published bundles, served over p2p
//! ([`serve_bundles`]) and HTTP ([`ShelfBundles`], the API's port), and announced to workers
//! on their membership streams ([`announce`]).

use std::{sync::Arc, time::Duration};

use futures_util::{AsyncWriteExt as _, StreamExt as _};
use nova_p2p::{
    bundle::{write_chunk, write_end, BundleReply, BundleRequest, MAX_CHUNK},
    frame,
    wire::MembershipReply,
    Control, Stream, BUNDLE,
};
use nova_update::Shelf;
use tokio::{io::AsyncReadExt as _, sync::Semaphore};

/// Downloads served at once; more are turned away (the worker retries later).
const MAX_DOWNLOADS: usize = 4;

/// The API's [`nova_api::Bundles`] port over a shelf.
#[derive(Debug, Clone)]
pub struct ShelfBundles(pub Arc<Shelf>);

impl nova_api::Bundles for ShelfBundles {
    fn latest(&self) -> Option<nova_api::LatestBundle> {
        self.0.latest().map(|p| nova_api::LatestBundle {
            file_name: p.manifest.file.clone(),
            version: p.manifest.version.clone(),
            size: p.manifest.size,
            archive: p.archive,
            manifest: p.manifest_json,
        })
    }
}

/// Serves bundle downloads from `shelf` until the swarm stops. Downloads run in this
/// function's `JoinSet`: dropping the future (shutdown) stops them. Cancel-safe.
pub async fn serve_bundles(shelf: Arc<Shelf>, mut control: Control) {
    let mut incoming = match control.accept(BUNDLE) {
        Ok(i) => i,
        Err(e) => {
            tracing::error!(error = %e, "bundle protocol already registered");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(MAX_DOWNLOADS));
    let mut downloads = tokio::task::JoinSet::new();
    loop {
        let (peer, stream) = tokio::select! {
            Some(_) = downloads.join_next(), if !downloads.is_empty() => continue,
            next = incoming.next() => match next {
                Some(n) => n,
                None => return,
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(peer = %peer, "{MAX_DOWNLOADS} bundle downloads running; turned one away");
            continue;
        };
        let shelf = shelf.clone();
        downloads.spawn(async move {
            let _permit = permit;
            match send(&shelf, stream).await {
                Ok(Some(version)) => tracing::info!(peer = %peer, %version, "sent update bundle"),
                Ok(None) => {}
                Err(e) => tracing::warn!(peer = %peer, error = %e, "bundle download failed"),
            }
        });
    }
}

async fn send(shelf: &Shelf, mut stream: Stream) -> Result<Option<String>, String> {
    let req =
        tokio::time::timeout(Duration::from_secs(10), frame::read::<_, BundleRequest>(&mut stream))
            .await
            .map_err(|_| "no request within 10 s".to_string())?
            .map_err(|e| e.to_string())?;
    let latest = shelf.latest().filter(|p| p.manifest.sha256 == req.sha256);
    let opened = match &latest {
        Some(p) => tokio::fs::File::open(&p.archive).await.map_err(|e| e.to_string()),
        None => Err("that bundle is no longer the published one".to_string()),
    };
    let (p, file) = match (latest, opened) {
        (Some(p), Ok(f)) => (p, f),
        (_, Err(reason)) => {
            let _ = frame::write(&mut stream, &BundleReply::Unavailable { reason }).await;
            return Ok(None);
        }
        (None, Ok(_)) => return Ok(None),
    };
    let size = p.manifest.size;
    frame::write(&mut stream, &BundleReply::Sending { size }).await.map_err(|e| e.to_string())?;
    // Never more than the signed size; a shorter file simply ends early, which the worker
    // reports as a truncated download.
    let mut file = file.take(size);
    let mut buf = vec![0u8; MAX_CHUNK];
    loop {
        let n = file.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        write_chunk(&mut stream, &buf[..n]).await.map_err(|e| e.to_string())?;
    }
    write_end(&mut stream).await.map_err(|e| e.to_string())?;
    let _ = stream.close().await;
    Ok(Some(p.manifest.version))
}

/// Tells a worker about the latest bundle on its membership stream. A write that fails or
/// stalls (a worker that does not read replies) turns announcements off for that stream.
pub(crate) async fn announce(shelf: Option<&Shelf>, stream: &mut Stream, on: &mut bool) {
    let Some(p) = shelf.filter(|_| *on).and_then(Shelf::latest) else { return };
    let reply = MembershipReply::Bundle { manifest: p.manifest_json };
    match tokio::time::timeout(Duration::from_secs(5), frame::write(stream, &reply)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "cannot announce the bundle; announcements off for this worker");
            *on = false;
        }
        Err(_) => {
            tracing::debug!("announcement stalled; announcements off for this worker");
            *on = false;
        }
    }
}
