//! `nova rag add | list | rm | reindex | search`: the documents this device can share with the
//! swarm, and [`shared`], the index as a serving node reads it.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use nova_proto::knowledge::{merge, KnowledgeQuery, KnowledgeReply, KnowledgeSummary};
use nova_rag::{Index, IndexEvent, IndexReport};

use crate::Global;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Add directories (text, Markdown and HTML files in them) and index them now.
    Add {
        /// The directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// List the indexed directories with what the index holds from each.
    List,
    /// Remove a directory and everything indexed from it (its files are not touched).
    Rm {
        /// The directory, as added (it need not exist any more).
        dir: PathBuf,
    },
    /// Bring the index up to date: read new and changed files, drop deleted ones.
    Reindex,
    /// Search the index as the swarm would, and print the hits.
    Search {
        /// The query (several words may be given unquoted).
        #[arg(required = true)]
        query: Vec<String>,
        /// Hits wanted (at most 16).
        #[arg(short, long, default_value_t = 5)]
        k: u32,
    },
}

/// Where the index lives in a data dir.
pub(crate) fn index_path(data_dir: &Path) -> PathBuf {
    data_dir.join("knowledge").join("index.sqlite")
}

pub(crate) async fn run(global: &Global, cmd: Command) -> anyhow::Result<ExitCode> {
    let path = index_path(&global.data_dir()?);
    // SQLite blocks; a one-shot command has nothing else to do meanwhile.
    tokio::task::spawn_blocking(move || run_blocking(&path, cmd)).await?
}

fn run_blocking(path: &Path, cmd: Command) -> anyhow::Result<ExitCode> {
    let mut index = Index::open(path).context("cannot open the knowledge index")?;
    match cmd {
        Command::Add { dirs } => {
            let mut roots = Vec::new();
            for dir in &dirs {
                let root =
                    index.add_root(dir).with_context(|| format!("cannot add {}", dir.display()))?;
                println!("added {}", root.display());
                roots.push(root);
            }
            for root in &roots {
                let started = Instant::now();
                let report = index.reindex(Some(root), &mut |e| print_event(e, false))?;
                let info = index.roots()?.into_iter().find(|r| r.path == *root);
                let (files, chunks, skipped) =
                    info.map_or((0, 0, 0), |i| (i.files, i.chunks, i.skipped));
                println!(
                    "{}: {files} files, {chunks} chunks, {skipped} skipped ({} read) in {:.2} s",
                    root.display(),
                    report.read,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        Command::List => {
            let roots = index.roots()?;
            if roots.is_empty() {
                println!("no directories indexed; add one with `nova rag add DIR`");
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:>8} {:>8} {:>10} {:>8}  PATH", "FILES", "CHUNKS", "SIZE", "SKIPPED");
            for r in &roots {
                let size = human(r.bytes);
                println!(
                    "{:>8} {:>8} {size:>10} {:>8}  {}",
                    r.files,
                    r.chunks,
                    r.skipped,
                    r.path.display()
                );
            }
            let s = index.summary()?;
            println!(
                "total: {} files, {} chunks; index {} ({})",
                s.files,
                s.chunks,
                human(index.used_bytes()?),
                path.display()
            );
        }
        Command::Rm { dir } => {
            if !index.remove_root(&dir)? {
                anyhow::bail!(
                    "{} is not an indexed directory; `nova rag list` shows them",
                    dir.display()
                );
            }
            println!("removed {} from the index", dir.display());
        }
        Command::Reindex => {
            let started = Instant::now();
            let report = index.reindex(None, &mut |e| print_event(e, true))?;
            println!("{} in {:.2} s", describe(&report), started.elapsed().as_secs_f64());
        }
        Command::Search { query, k } => {
            let query = query.join(" ");
            let reply = index.search(&KnowledgeQuery { query, k })?;
            print_hits(reply, k as usize);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints what the user should hear of: changes only with `changes` (a first `add` of a big
/// directory would otherwise print every file), anything not indexed always.
fn print_event(e: &IndexEvent, changes: bool) {
    match e {
        IndexEvent::Added { path, chunks } if changes => println!("added {path} ({chunks} chunks)"),
        IndexEvent::Updated { path, chunks } if changes => {
            println!("updated {path} ({chunks} chunks)")
        }
        IndexEvent::Removed { path } if changes => println!("removed {path}"),
        IndexEvent::Skipped { path, reason } => println!("skipped {path}: {reason}"),
        IndexEvent::Truncated { path, kept } => {
            println!("truncated {path}: only its first {kept} chunks are indexed")
        }
        IndexEvent::Limit { root, what } => println!("limit in {}: {what}", root.display()),
        IndexEvent::RootMissing { root } => {
            println!(
                "missing {}: not a directory any more; its files left the index",
                root.display()
            )
        }
        _ => {}
    }
}

fn describe(r: &IndexReport) -> String {
    format!(
        "reindexed {} {}: {} files, {} unchanged, {} read ({} added, {} updated, {} \
         touched), {} removed, {} newly skipped, {} still skipped, {} over the limits",
        r.roots,
        if r.roots == 1 { "directory" } else { "directories" },
        r.seen,
        r.unchanged,
        r.read,
        r.added,
        r.updated,
        r.touched,
        r.removed,
        r.skipped,
        r.still_skipped,
        r.over_limit
    )
}

fn print_hits(reply: KnowledgeReply, k: usize) {
    let (chunks, terms) = (reply.stats.chunks, reply.stats.terms.join(" "));
    // Scored as the gateway would score this node alone.
    let ranked = merge(vec![("local".into(), reply)], k);
    if ranked.is_empty() {
        println!("no hits (terms: {terms:?}; {chunks} chunks indexed)");
        return;
    }
    for (i, h) in ranked.iter().enumerate() {
        println!("{}. {} #{}  score {:.2}", i + 1, h.path, h.chunk, h.score);
        for line in h.text.lines() {
            println!("   {line}");
        }
    }
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n => format!("{:.1} KiB", n as f64 / 1024.0),
    }
}

/// How long a summary is reused before it is read again: heartbeats are frequent, the index
/// changes only when someone runs `nova rag`.
const SUMMARY_TTL: Duration = Duration::from_secs(10);

/// The index in the data dir as a serving node shares it: searched under a mutex (a search is
/// a few milliseconds; the caller runs it on a blocking thread), its summary cached. Fails if
/// no directory was ever added. The node only reads; `nova rag add` or `reindex` may write at
/// the same time from another process.
pub(crate) fn shared(data_dir: &Path) -> anyhow::Result<Arc<dyn nova_node::KnowledgeBase>> {
    let path = index_path(data_dir);
    if !path.exists() {
        anyhow::bail!(
            "no knowledge index in {}: add directories with `nova rag add DIR` first",
            data_dir.display()
        );
    }
    let index = Index::open(&path).context("cannot open the knowledge index")?;
    if index.roots()?.is_empty() {
        anyhow::bail!(
            "the knowledge index {} holds no directories: add one with `nova rag add DIR`",
            path.display()
        );
    }
    let summary = index.summary()?;
    Ok(Arc::new(Shared {
        index: Mutex::new(index),
        summary: Mutex::new((Instant::now(), summary)),
    }))
}

#[derive(Debug)]
struct Shared {
    index: Mutex<Index>,
    /// The last summary read and when.
    summary: Mutex<(Instant, KnowledgeSummary)>,
}

impl nova_node::KnowledgeBase for Shared {
    fn search(&self, query: &KnowledgeQuery) -> Result<KnowledgeReply, String> {
        let index = self.index.lock().map_err(|_| "the knowledge index lock is poisoned")?;
        index.search(query).map_err(|e| format!("{e}"))
    }

    /// Never waits on a search: if one holds the index, the cached summary is returned.
    fn summary(&self) -> KnowledgeSummary {
        let Ok(mut cached) = self.summary.lock() else { return KnowledgeSummary::default() };
        if cached.0.elapsed() < SUMMARY_TTL {
            return cached.1;
        }
        if let Ok(index) = self.index.try_lock() {
            match index.summary() {
                Ok(s) => *cached = (Instant::now(), s),
                Err(e) => {
                    // Tried again after the TTL, not at every heartbeat.
                    cached.0 = Instant::now();
                    tracing::warn!(error = %e, "cannot read the knowledge index summary");
                }
            }
        }
        cached.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_needs_an_index_with_a_root_then_searches() -> anyhow::Result<()> {
        let home = tempfile::tempdir()?;
        let err = shared(home.path()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("nova rag add"), "{err}");
        let mut index = Index::open(&index_path(home.path()))?;
        let err = shared(home.path()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("holds no directories"), "{err}");

        let docs = tempfile::tempdir()?;
        std::fs::write(docs.path().join("a.md"), "# Owner\n\nQX-4471 belongs to Ada.")?;
        index.add_root(docs.path())?;
        index.reindex(None, &mut |_| {})?;
        let kb = shared(home.path())?;
        assert_eq!(kb.summary(), KnowledgeSummary { files: 1, chunks: 1 });
        let q = KnowledgeQuery { query: "qx-4471 owner".into(), k: 3 };
        let reply = kb.search(&q).map_err(anyhow::Error::msg)?;
        assert_eq!(reply.hits.len(), 1);
        assert_eq!(reply.stats.df, [1, 1, 1]);

        // Another process adds a file: the cached summary holds until its TTL.
        std::fs::write(docs.path().join("b.md"), "more")?;
        index.reindex(None, &mut |_| {})?;
        assert_eq!(kb.summary().files, 1);
        let q = KnowledgeQuery { query: "more".into(), k: 3 };
        assert_eq!(kb.search(&q).map_err(anyhow::Error::msg)?.hits.len(), 1);
        Ok(())
    }
}
