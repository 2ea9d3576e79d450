//! Worker side of self-update.
//!
//! Topology: the membership loop reads the gateway's [`MembershipReply`] frames
//! ([`read_replies`]) and hands bundle announcements to [`run_updater`] over a bounded channel
//! (full: dropped; the gateway repeats them every heartbeat). The updater handles one at a
//! time: verify the signed manifest (signature, target, replay, version) → download over
//! [`nova_p2p::BUNDLE`] to a temporary file in the data dir → check size and sha256 → extract
//! into a staging directory beside the executable → health-check, swap, health-check again
//! (`nova_update::Installer`) → record the sequence → re-exec the new binary with the same
//! arguments. Any refusal leaves the running binary as it is; a bundle refused for what it is
//! (not for a broken transfer) is not tried again.

use std::{
    collections::HashSet,
    ffi::OsString,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::{io::AsyncRead, AsyncWriteExt as _};
use nova_p2p::{
    bundle::{read_chunk, BundleReply, BundleRequest},
    frame::{self, FrameError},
    wire::MembershipReply,
    Control, PeerId, BUNDLE,
};
use nova_update::{
    Installer, Limits, Manifest, Policy, Release, UpdateError, UpdateState, VerifyingKey, Version,
};
use tokio::{io::AsyncWriteExt as _, sync::mpsc};

/// A bundle the gateway announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The gateway that announced it (and serves it).
    pub gateway: PeerId,
    /// Its signed manifest, verbatim.
    pub manifest: String,
}

/// What the updater decided, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdateEvent {
    /// A gateway offers updates but no release key is trusted (said once).
    Off {
        /// The version offered.
        version: String,
    },
    /// A newer signed version passed the manifest checks; downloading.
    Fetching {
        /// Its version.
        version: String,
        /// Its size in bytes.
        size: u64,
    },
    /// Refused for what the bundle is; it will not be tried again.
    Refused {
        /// Its version (as claimed).
        version: String,
        /// `UpdateError::kind`.
        kind: &'static str,
        /// Why.
        message: String,
    },
    /// Failed for a reason that may pass (a cut download); retried after a while.
    Failed {
        /// Its version.
        version: String,
        /// `UpdateError::kind`.
        kind: &'static str,
        /// Why.
        message: String,
    },
    /// Installed and healthy; the process is about to re-exec into it.
    Restarting {
        /// The new version.
        version: String,
        /// The executable.
        exe: PathBuf,
    },
    /// The re-exec failed; the previous binary was restored and keeps running.
    RestartFailed {
        /// Why.
        message: String,
    },
}

/// Receives [`UpdateEvent`]s. Called synchronously, so output is written before a re-exec.
pub type OnEvent = Arc<dyn Fn(&UpdateEvent) + Send + Sync>;

/// The updater's settings.
#[derive(Debug, Clone)]
pub struct UpdaterConfig {
    /// The release key bundles must be signed with; `None`: updates are off.
    pub trusted: Option<VerifyingKey>,
    /// The data dir (update state, downloads).
    pub data_dir: PathBuf,
    /// The executable to replace, resolved at start-up (before any swap).
    pub exe: PathBuf,
    /// The version running now.
    pub running: Version,
    /// The arguments to re-exec with (without the program name).
    pub args: Vec<OsString>,
    /// Limit for each health-check command.
    pub health_timeout: Duration,
    /// Archive and extraction limits.
    pub limits: Limits,
    /// Wait before trying a bundle again after a transient failure.
    pub retry_after: Duration,
}

/// Reads the gateway's replies on the membership stream and forwards announcements to `tx`
/// (`None`: they are read and dropped, so the gateway's writes never back up). Returns when
/// the stream breaks. Unknown replies (from a newer gateway) are skipped.
pub(crate) async fn read_replies<R: AsyncRead + Unpin>(
    gateway: PeerId,
    mut r: R,
    tx: Option<mpsc::Sender<Announcement>>,
) {
    loop {
        match frame::read::<_, MembershipReply>(&mut r).await {
            Ok(MembershipReply::Bundle { manifest }) => {
                if let Some(tx) = &tx {
                    // Full means an update is being handled; the next heartbeat repeats it.
                    let _ = tx.try_send(Announcement { gateway, manifest });
                }
            }
            Err(FrameError::Malformed(e)) => {
                tracing::debug!(error = %e, "unknown membership reply; skipped")
            }
            Err(e) => {
                tracing::debug!(error = %e, "membership replies ended");
                return;
            }
        }
    }
}

/// How long the gateway may stay silent during a download.
const STALL: Duration = Duration::from_secs(60);

/// Handles announcements until `rx` closes. On a successful install the process re-execs and
/// this never returns. Cancel-safe between updates; cancelling mid-update leaves at most a
/// temporary file or staging directory, removed on drop.
pub async fn run_updater(
    control: Control,
    config: UpdaterConfig,
    mut rx: mpsc::Receiver<Announcement>,
    on_event: OnEvent,
) {
    let mut refused: HashSet<String> = HashSet::new();
    let mut retry: Option<(String, Instant)> = None;
    let mut said_off = false;
    while let Some(a) = rx.recv().await {
        let manifest = match Manifest::from_json(a.manifest.as_bytes()) {
            Ok(m) => m,
            Err(e) => {
                if refused.insert(a.manifest.clone()) {
                    tracing::warn!(error = %e, "the gateway announced a malformed bundle manifest");
                    on_event(&refused_event("?", &e));
                }
                continue;
            }
        };
        let Some(trusted) = config.trusted else {
            if !said_off {
                said_off = true;
                tracing::warn!(version = %manifest.version, "the gateway offers an update, but no release key is trusted: updates are off (give --release-pubkey or put the key in trusted-release.pub)");
                on_event(&UpdateEvent::Off { version: manifest.version.clone() });
            }
            continue;
        };
        // One identity per signed bundle: the signature covers everything else.
        let id = manifest.signature.clone();
        if refused.contains(&id) {
            continue;
        }
        if let Some((rid, at)) = &retry {
            if *rid == id && at.elapsed() < config.retry_after {
                continue;
            }
        }
        match update(&control, &config, &trusted, &a, &manifest, &on_event).await {
            // `update` only returns Ok when the re-exec failed and was rolled back.
            Ok(()) => {
                refused.insert(id);
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(version = %manifest.version, kind = e.kind(), error = %e, "update failed; will retry");
                on_event(&UpdateEvent::Failed {
                    version: manifest.version.clone(),
                    kind: e.kind(),
                    message: e.to_string(),
                });
                retry = Some((id, Instant::now()));
            }
            Err(e) => {
                tracing::warn!(version = %manifest.version, kind = e.kind(), error = %e, "update refused");
                on_event(&refused_event(&manifest.version, &e));
                refused.insert(id);
            }
        }
    }
}

fn refused_event(version: &str, e: &UpdateError) -> UpdateEvent {
    UpdateEvent::Refused { version: version.into(), kind: e.kind(), message: e.to_string() }
}

async fn update(
    control: &Control,
    config: &UpdaterConfig,
    trusted: &VerifyingKey,
    a: &Announcement,
    manifest: &Manifest,
    on_event: &OnEvent,
) -> Result<(), UpdateError> {
    let release = manifest.verify(trusted)?;
    let data_dir = config.data_dir.clone();
    let state = tokio::task::spawn_blocking(move || UpdateState::load(&data_dir))
        .await
        .map_err(|e| UpdateError::Download(e.to_string()))??;
    let policy = Policy {
        running: config.running.clone(),
        target: nova_update::TARGET.into(),
        applied_sequence: state.applied_sequence,
    };
    policy.check(&release)?;
    tracing::info!(version = %release.version, sequence = manifest.sequence, size = manifest.size, "a newer signed version is offered; downloading");
    on_event(&UpdateEvent::Fetching { version: manifest.version.clone(), size: manifest.size });
    let archive = download(control.clone(), a.gateway, &release, config).await?;

    let (cfg, rel) = (config.clone(), release.clone());
    let installed = tokio::task::spawn_blocking(move || {
        rel.check_archive(archive.path())?;
        let installer = Installer::new(&cfg.exe).with_timeout(cfg.health_timeout);
        let staging = installer.staging_dir()?;
        let x = nova_update::extract(archive.path(), staging.path(), &cfg.limits, &rel)?;
        let installed = installer.install(&x.binary, &rel.version)?;
        let applied = UpdateState {
            applied_sequence: rel.manifest.sequence,
            applied_version: Some(rel.version.to_string()),
            applied_at_ms: crate::now_ms(),
        };
        // Without the record, a replay could not be told apart later: undo the swap instead.
        if let Err(e) = applied.save(&cfg.data_dir) {
            installer.rollback()?;
            return Err(e);
        }
        Ok((installer, installed, state))
    })
    .await
    .map_err(|e| UpdateError::Download(e.to_string()))?;
    let (installer, installed, previous_state) = installed?;

    tracing::info!(version = %installed.version, exe = %installed.exe.display(), prev = %installed.prev.display(), "update installed and healthy; restarting into it");
    on_event(&UpdateEvent::Restarting {
        version: installed.version.to_string(),
        exe: installed.exe.clone(),
    });
    let err = {
        use std::os::unix::process::CommandExt as _;
        std::process::Command::new(&installed.exe).args(&config.args).exec()
    };
    // Still here: the exec failed. Put the old binary (and the old state) back and carry on.
    let message = match installer.rollback().and_then(|()| previous_state.save(&config.data_dir)) {
        Ok(()) => format!("cannot start {}: {err}; rolled back", installed.exe.display()),
        Err(e) => {
            format!("cannot start {}: {err}; rollback failed too: {e}", installed.exe.display())
        }
    };
    tracing::error!(%message, "restart failed");
    on_event(&UpdateEvent::RestartFailed { message });
    Ok(())
}

/// Fetches the archive into a temporary file in `<data dir>/updates/`, never writing more
/// than the signed size. A stream that ends early is a truncated download.
async fn download(
    mut control: Control,
    gateway: PeerId,
    release: &Release,
    config: &UpdaterConfig,
) -> Result<tempfile::NamedTempFile, UpdateError> {
    let want = release.manifest.size;
    if want > config.limits.archive {
        return Err(UpdateError::TooLarge {
            what: "the archive".into(),
            limit: config.limits.archive,
        });
    }
    let dir = config.data_dir.join("updates");
    let tmp = {
        let d = dir.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&d)?;
            tempfile::Builder::new().prefix(".download-").tempfile_in(&d)
        })
        .await
        .map_err(|e| UpdateError::Download(e.to_string()))?
        .map_err(|e| UpdateError::io(&dir, e))?
    };
    let dl = |e: &dyn std::fmt::Display| UpdateError::Download(e.to_string());
    let mut stream =
        tokio::time::timeout(Duration::from_secs(10), control.open_stream(gateway, BUNDLE))
            .await
            .map_err(|_| dl(&"the gateway did not open a bundle stream within 10 s"))?
            .map_err(|e| dl(&e))?;
    frame::write(&mut stream, &BundleRequest { sha256: release.manifest.sha256.clone() })
        .await
        .map_err(|e| dl(&e))?;
    match tokio::time::timeout(STALL, frame::read::<_, BundleReply>(&mut stream)).await {
        Ok(Ok(BundleReply::Sending { .. })) => {}
        Ok(Ok(BundleReply::Unavailable { reason })) => return Err(dl(&reason)),
        Ok(Err(e)) => return Err(dl(&e)),
        Err(_) => return Err(dl(&"the gateway did not answer")),
    }
    let std_file = tmp.reopen().map_err(|e| UpdateError::io(tmp.path(), e))?;
    let mut file = tokio::fs::File::from_std(std_file);
    let (mut got, mut buf) = (0u64, Vec::new());
    loop {
        match tokio::time::timeout(STALL, read_chunk(&mut stream, &mut buf)).await {
            Ok(Ok(true)) => {
                got += buf.len() as u64;
                if got > want {
                    return Err(UpdateError::TooLarge { what: "the download".into(), limit: want });
                }
                file.write_all(&buf).await.map_err(|e| UpdateError::io(tmp.path(), e))?;
            }
            Ok(Ok(false)) => break,
            // A cut stream: report what arrived.
            Ok(Err(FrameError::Closed | FrameError::Io(_))) => {
                return Err(UpdateError::Truncated { got, expected: want })
            }
            Ok(Err(e)) => return Err(dl(&e)),
            Err(_) => return Err(dl(&format!("the gateway stalled after {got} bytes"))),
        }
    }
    let _ = stream.close().await;
    file.sync_all().await.map_err(|e| UpdateError::io(tmp.path(), e))?;
    if got < want {
        return Err(UpdateError::Truncated { got, expected: want });
    }
    Ok(tmp)
}
