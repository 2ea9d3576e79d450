//! `nova bundle …` (build, sign, verify release bundles; print the release key), `nova version`
//! and `nova self-check` (the health check a new binary must pass before it replaces the old),
//! and the worker's side of self-update: which release key it trusts, and the updater task.

use std::{
    ffi::OsString,
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Arc, OnceLock},
    time::Duration,
};

use anyhow::Context as _;
use nova_update::{Limits, Manifest, Version};

use crate::Global;

/// `nova bundle …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Package a binary as nova-swarm-<version>.tgz (binary, version.json, SHA256SUMS).
    Build(BuildArgs),
    /// Sign a bundle with the release key (<data dir>/release.key, generated on first use);
    /// writes <bundle>.sig next to it.
    Sign {
        /// The bundle (.tgz).
        bundle: PathBuf,
    },
    /// Check a bundle's signature, checksums and contents against a public key.
    Verify {
        /// The bundle (.tgz); its manifest is <bundle>.sig unless --manifest says otherwise.
        bundle: PathBuf,
        /// The release public key: 64 hex digits or a file holding them.
        #[arg(long)]
        pubkey: String,
        /// The signed manifest (default: <bundle>.sig).
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Print the release public key (generating the key pair on first use). Workers trust it
    /// via <data dir>/trusted-release.pub or --release-pubkey.
    Key,
}

#[derive(Debug, clap::Args)]
pub(crate) struct BuildArgs {
    /// The binary to package (default: this one).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Version to record. When given, it is also stamped into the packaged copy of the binary,
    /// which then reports it (`nova version`); default: the version the binary reports.
    #[arg(long)]
    version: Option<Version>,
    /// Release sequence; must grow with every release (workers refuse sequences not above the
    /// last they applied). Default: the current time in milliseconds.
    #[arg(long)]
    sequence: Option<u64>,
    /// Directory to write the bundle to. The gateway serves bundles from <data dir>/bundles.
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// Compress fast (gzip level 1: for nova 0.6 s instead of 3.4 s, a 24 % larger bundle).
    #[arg(long)]
    fast: bool,
}

/// `nova version`.
#[derive(Debug, clap::Args)]
pub(crate) struct VersionArgs {
    /// Print JSON: {"version", "compiled", "target"}.
    #[arg(long)]
    json: bool,
}

/// `nova self-check`: exits 0 when this binary can start. Used as the health check of a new
/// binary before (and right after) it replaces the old one.
#[derive(Debug, clap::Args)]
pub(crate) struct SelfCheckArgs {}

/// The worker's update settings.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct UpdateArgs {
    /// Release public key this worker trusts for self-updates: 64 hex digits or a file holding
    /// them. Default: <data dir>/trusted-release.pub; without either, updates are off.
    #[arg(long, env = "NOVA_RELEASE_PUBKEY")]
    release_pubkey: Option<String>,
    /// Never self-update, even with a trusted key.
    #[arg(long)]
    no_update: bool,
}

/// The version this binary reports: its stamp (see `nova_update::stamp`), else the compiled
/// version.
pub(crate) fn running_version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        let exe = std::env::current_exe().ok();
        nova_update::stamp::effective(exe.as_deref(), env!("CARGO_PKG_VERSION"))
    })
}

pub(crate) fn version(args: VersionArgs) -> anyhow::Result<ExitCode> {
    if args.json {
        let v = serde_json::json!({
            "version": running_version(),
            "compiled": env!("CARGO_PKG_VERSION"),
            "target": nova_update::TARGET,
        });
        println!("{v}");
    } else {
        println!("nova {} ({})", running_version(), nova_update::TARGET);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn self_check(_args: SelfCheckArgs) -> anyhow::Result<ExitCode> {
    // Reaching this point means the binary loaded, parsed its arguments and started its async
    // runtime; the version must also parse, or every later update comparison would fail.
    Version::parse(running_version())
        .with_context(|| format!("this binary reports {:?}, not a version", running_version()))?;
    println!("ok");
    Ok(ExitCode::SUCCESS)
}

fn parse_key(given: &str) -> anyhow::Result<nova_update::VerifyingKey> {
    let path = Path::new(given);
    if given.len() != 64 && path.exists() {
        return nova_update::read_trusted_key(path)?
            .with_context(|| format!("{} vanished", path.display()));
    }
    Ok(nova_update::parse_public_key(given, "given with --pubkey/--release-pubkey")?)
}

/// The version `binary` reports, asking it when it is not this executable.
fn reported_version(binary: &Path) -> anyhow::Result<Version> {
    let this = std::env::current_exe().ok().and_then(|p| p.canonicalize().ok());
    if binary.canonicalize().ok() == this {
        return Ok(Version::parse(running_version())?);
    }
    let out = std::process::Command::new(binary)
        .args(["version", "--json"])
        .output()
        .with_context(|| format!("cannot run {} to ask its version", binary.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!("{} did not report a version; give --version", binary.display())
    })?;
    let text = v["version"].as_str().context("no version in `version --json`; give --version")?;
    Ok(Version::parse(text)?)
}

pub(crate) async fn run(global: &Global, cmd: Command) -> anyhow::Result<ExitCode> {
    let global = global.clone();
    // Hashing and compressing a few hundred MB: off the async threads.
    tokio::task::spawn_blocking(move || run_blocking(&global, cmd)).await?
}

fn run_blocking(global: &Global, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Build(a) => {
            let binary = match a.binary {
                Some(b) => b,
                None => std::env::current_exe().context("cannot find this executable")?,
            };
            let (version, stamp) = match a.version {
                Some(v) => (v, true),
                None => (reported_version(&binary)?, false),
            };
            let sequence = a.sequence.unwrap_or_else(nova_node::now_ms);
            let (path, info) = nova_update::build(&nova_update::BuildOptions {
                binary: binary.clone(),
                version,
                stamp,
                sequence,
                target: nova_update::TARGET.into(),
                out_dir: a.out,
                level: if a.fast { 1 } else { 6 },
            })
            .with_context(|| format!("cannot bundle {}", binary.display()))?;
            println!(
                "bundle {} (version {}, sequence {}, {})",
                path.display(),
                info.version,
                info.sequence,
                info.target
            );
            println!("sign it with: nova bundle sign {}", path.display());
        }
        Command::Sign { bundle } => {
            let data_dir = global.data_dir()?;
            let existed = data_dir.join(nova_update::RELEASE_KEY).exists();
            let key = nova_update::load_or_create_release_key(&data_dir)?;
            if !existed {
                eprintln!(
                    "generated the release key {} (mode 0600): back it up; workers trust its public half",
                    data_dir.join(nova_update::RELEASE_KEY).display()
                );
            }
            let m = nova_update::sign(&bundle, &key, &Limits::default())
                .with_context(|| format!("cannot sign {}", bundle.display()))?;
            let sig = sig_path(&bundle);
            m.write(&sig)?;
            println!(
                "signed {} (version {}, sequence {}) -> {}",
                bundle.display(),
                m.version,
                m.sequence,
                sig.display()
            );
            println!("release public key: {}", m.key);
        }
        Command::Verify { bundle, pubkey, manifest } => {
            let key = parse_key(&pubkey)?;
            let manifest_path = manifest.unwrap_or_else(|| sig_path(&bundle));
            let m = Manifest::read(&manifest_path)?;
            let release = m.verify(&key)?;
            release.check_archive(&bundle)?;
            let staging = tempfile::tempdir().context("cannot create a temporary directory")?;
            let x = nova_update::extract(&bundle, staging.path(), &Limits::default(), &release)?;
            println!(
                "ok: {} is version {} (sequence {}, {}), signed by {}; checksums match",
                bundle.display(),
                x.info.version,
                x.info.sequence,
                x.info.target,
                nova_update::public_key_hex(&key)
            );
        }
        Command::Key => {
            let key = nova_update::load_or_create_release_key(&global.data_dir()?)?;
            println!("{}", nova_update::public_key_hex(&key.verifying_key()));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn sig_path(bundle: &Path) -> PathBuf {
    let mut s = bundle.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// `nova worker`'s self-update settings (`None` with `--no-update`) and the line that says
/// whether updates are on, printed once the worker has started. Without a trusted release key
/// the updater only says, once, that updates are off.
pub(crate) fn update_settings(
    global: &Global,
    args: &UpdateArgs,
) -> anyhow::Result<(Option<nova_node::UpdateSettings>, String)> {
    if args.no_update {
        return Ok((None, "self-update: off (--no-update)".into()));
    }
    let data_dir = global.data_dir()?;
    let trusted = match &args.release_pubkey {
        Some(k) => Some(parse_key(k)?),
        None => nova_update::read_trusted_key(&data_dir.join(nova_update::TRUSTED_RELEASE_PUB))?,
    };
    let said = match &trusted {
        Some(k) => {
            format!("self-update: on, trusting release key {}", nova_update::public_key_hex(k))
        }
        None => format!(
            "self-update: off (no trusted release key: --release-pubkey or {})",
            data_dir.join(nova_update::TRUSTED_RELEASE_PUB).display()
        ),
    };
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let config = nova_node::UpdaterConfig {
        trusted,
        data_dir,
        exe,
        running: Version::parse(running_version())?,
        args: std::env::args_os().skip(1).collect::<Vec<OsString>>(),
        health_timeout: Duration::from_secs(30),
        limits: Limits::default(),
        retry_after: Duration::from_secs(60),
    };
    let on_event: nova_node::OnEvent = Arc::new(|e: &nova_node::UpdateEvent| {
        use nova_node::UpdateEvent as E;
        match e {
            E::Off { version } => println!(
                "self-update: the gateway offers {version}, but no release key is trusted; updates are off"
            ),
            E::Fetching { version, size } => println!("update: fetching {version} ({size} bytes)"),
            E::Refused { version, kind, message } => {
                println!("update refused ({kind}): {version}: {message}")
            }
            E::Failed { version, kind, message } => {
                println!("update failed ({kind}): {version}: {message}; will retry")
            }
            E::Restarting { version, exe } => {
                println!("update: {version} installed at {}; restarting", exe.display())
            }
            E::RestartFailed { message } => println!("update: {message}"),
            _ => println!("update: {e:?}"),
        }
        // Before a re-exec, everything said must be out.
        let _ = std::io::stdout().flush();
    });
    Ok((Some(nova_node::UpdateSettings { config, on_event }), said))
}
