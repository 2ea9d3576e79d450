//! How long a build of 1,000 Markdown files takes, how big the index gets and how fast it is
//! searched, in-process and without the CLI: `cargo run --release -p nova-rag --example
//! measure`. A measurement, so an example rather than a test (BENCHMARKS.md's figures come
//! from `scripts/eval_docqa.sh`, which times the `nova rag` binary).

use std::fs;

use nova_proto::knowledge::KnowledgeQuery;

use nova_rag::Index;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// 1,000 files of about 4.7 KB of Markdown each.
fn main() -> Result {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("docs");
    fs::create_dir(&root)?;
    let words = ["river", "stone", "lamp", "garden", "copper", "violet", "rocket", "paper"];
    let mut bytes = 0;
    for i in 0..1000usize {
        let mut s = format!("# Document {i}\n\nunique{i} marks it.\n\n");
        for part in 0..4 {
            s.push_str(&format!("## Part {part}\n\n"));
            for w in 0..180 {
                s.push_str(words[(i * 7 + part * 3 + w * w) % words.len()]);
                s.push_str(if w % 90 == 89 { "\n\n" } else { " " });
            }
        }
        bytes += s.len();
        fs::write(root.join(format!("d{i:04}.md")), s)?;
    }
    let db = tmp.path().join("index.sqlite");
    let mut ix = Index::open(&db)?;
    ix.add_root(&root)?;
    let t = std::time::Instant::now();
    ix.reindex(None, &mut |_| {})?;
    let build = t.elapsed();
    let t = std::time::Instant::now();
    let r = ix.reindex(None, &mut |_| {})?;
    let noop = t.elapsed();
    let t = std::time::Instant::now();
    for i in 0..100 {
        ix.search(&KnowledgeQuery { query: format!("unique{i} river garden"), k: 8 })?;
    }
    let search = t.elapsed() / 100;
    let t = std::time::Instant::now();
    for _ in 0..20 {
        ix.search(&KnowledgeQuery { query: "river garden".into(), k: 8 })?;
    }
    let common = t.elapsed() / 20;
    let s = ix.summary()?;
    drop(ix);
    let disk = fs::metadata(&db)?.len()
        + fs::metadata(tmp.path().join("index.sqlite-wal")).map_or(0, |m| m.len());
    eprintln!(
        "1000 files, {} KiB of text, {} chunks: build {build:?}, no-op reindex {noop:?} ({} unchanged), \
         search {search:?} (only common terms: {common:?}), index {} KiB on disk",
        bytes / 1024, s.chunks, r.unchanged, disk / 1024
    );
    Ok(())
}
