//! The index as a whole: opening, roots, incremental reindexing, skips, symlinks, bounds.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::Path,
    time::{Duration, SystemTime},
};

use nova_proto::knowledge::KnowledgeQuery;

use crate::{Index, IndexEvent, IndexReport, Limits, RagError, SkipReason};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn write(dir: &Path, files: &[(&str, &str)]) -> Result {
    for (name, text) in files {
        let p = dir.join(name);
        fs::create_dir_all(p.parent().ok_or("no parent")?)?;
        fs::write(p, text)?;
    }
    Ok(())
}

fn reindex(ix: &mut Index) -> Result<(IndexReport, Vec<IndexEvent>)> {
    let mut events = Vec::new();
    let report = ix.reindex(None, &mut |e| events.push(e.clone()))?;
    Ok((report, events))
}

fn hits(ix: &Index, q: &str) -> Result<Vec<String>> {
    let r = ix.search(&KnowledgeQuery { query: q.into(), k: 16 })?;
    Ok(r.hits.into_iter().map(|h| h.path).collect())
}

/// A root directory named `docs` inside a temp dir, and an in-memory index with it added.
fn setup(limits: Limits, files: &[(&str, &str)]) -> Result<(tempfile::TempDir, Index)> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("docs");
    fs::create_dir(&root)?;
    write(&root, files)?;
    let mut ix = Index::in_memory(limits)?;
    ix.add_root(&root)?;
    Ok((tmp, ix))
}

#[test]
fn bundled_sqlite_has_fts5() -> Result {
    let c = rusqlite::Connection::open_in_memory()?;
    c.execute_batch("CREATE VIRTUAL TABLE t USING fts5(x)")?;
    Ok(())
}

#[test]
fn open_creates_a_private_file_and_reopens() -> Result {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("a/b/index.sqlite");
    Index::open(&path)?;
    assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
    assert_eq!(fs::metadata(tmp.path().join("a/b"))?.permissions().mode() & 0o777, 0o700);
    let ix = Index::open(&path)?;
    assert!(ix.roots()?.is_empty());
    Ok(())
}

#[test]
fn garbage_foreign_and_newer_files_are_refused_clearly() -> Result {
    let tmp = tempfile::tempdir()?;
    let garbage = tmp.path().join("garbage.sqlite");
    fs::write(&garbage, vec![0x5a; 8192])?;
    let e = Index::open(&garbage).err().ok_or("garbage opened")?;
    assert!(matches!(e, RagError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("delete it"), "{e}");

    let foreign = tmp.path().join("foreign.sqlite");
    rusqlite::Connection::open(&foreign)?.execute_batch("CREATE TABLE t(x)")?;
    let e = Index::open(&foreign).err().ok_or("foreign opened")?;
    assert!(matches!(e, RagError::Corrupt { .. }), "{e}");

    let newer = tmp.path().join("newer.sqlite");
    rusqlite::Connection::open(&newer)?.pragma_update(None, "user_version", 99)?;
    let e = Index::open(&newer).err().ok_or("newer opened")?;
    assert!(matches!(e, RagError::Newer { found: 99, .. }), "{e}");

    // An empty file (a process killed right after creating it) is a new index.
    let empty = tmp.path().join("empty.sqlite");
    fs::write(&empty, b"")?;
    Index::open(&empty)?;
    Ok(())
}

#[test]
fn a_copy_taken_mid_write_with_its_wal_opens_and_answers() -> Result {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("docs");
    write(&root, &[("a.txt", "the zebra code is 7731")])?;
    let live = tmp.path().join("live/index.sqlite");
    let mut ix = Index::open(&live)?;
    ix.add_root(&root)?;
    reindex(&mut ix)?;
    // What a SIGKILL leaves: the database and its -wal, not checkpointed, with the writer
    // still holding them. Copy them elsewhere and open the copy.
    let dead = tmp.path().join("dead");
    fs::create_dir(&dead)?;
    for suffix in ["", "-wal"] {
        fs::copy(
            format!("{}{suffix}", live.display()),
            dead.join(format!("index.sqlite{suffix}")),
        )?;
    }
    assert!(fs::metadata(dead.join("index.sqlite-wal"))?.len() > 0, "the test needs a WAL");
    let copy = Index::open(&dead.join("index.sqlite"))?;
    assert_eq!(hits(&copy, "zebra")?, ["docs/a.txt"]);
    drop(ix);
    Ok(())
}

#[test]
fn roots_are_canonical_idempotent_directories() -> Result {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("notes");
    fs::create_dir(&dir)?;
    fs::write(tmp.path().join("file.txt"), "x")?;
    let mut ix = Index::in_memory(Limits { max_roots: 2, ..Limits::default() })?;
    let canonical = ix.add_root(&dir.join("../notes"))?;
    assert_eq!(canonical, dir.canonicalize()?);
    assert_eq!(ix.add_root(&dir)?, canonical);
    assert_eq!(ix.roots()?.len(), 1);
    let e = ix.add_root(&tmp.path().join("file.txt")).err().ok_or("file added")?;
    assert!(matches!(e, RagError::NotADirectory(_)), "{e}");
    let e = ix.add_root(&tmp.path().join("missing")).err().ok_or("missing added")?;
    assert!(matches!(e, RagError::Io { .. }), "{e}");
    ix.add_root(tmp.path())?;
    let e = ix.add_root(&tmp.path().join("..")).err().ok_or("third root added")?;
    assert!(matches!(e, RagError::TooManyRoots(2)), "{e}");

    assert!(ix.remove_root(tmp.path())?);
    assert!(!ix.remove_root(tmp.path())?);
    let e = ix.reindex(Some(tmp.path()), &mut |_| {}).err().ok_or("unknown root reindexed")?;
    assert!(matches!(e, RagError::UnknownRoot(_)), "{e}");
    Ok(())
}

#[test]
fn only_changed_files_are_read_and_deletions_are_noticed() -> Result {
    let (tmp, mut ix) = setup(
        Limits::default(),
        &[
            ("a.md", "# A\n\nalpha apple"),
            ("b.txt", "bravo banana"),
            ("sub/c.html", "<p>charlie</p>"),
        ],
    )?;
    let root = tmp.path().join("docs");
    let (r, events) = reindex(&mut ix)?;
    assert_eq!((r.seen, r.read, r.added, r.unchanged), (3, 3, 3, 0), "{r:?}");
    assert_eq!(events.len(), 3);
    assert_eq!(hits(&ix, "apple")?, ["docs/a.md"]);
    assert_eq!(hits(&ix, "charlie")?, ["docs/sub/c.html"]);

    let (r, events) = reindex(&mut ix)?;
    assert_eq!((r.seen, r.read, r.unchanged), (3, 0, 3), "{r:?}");
    assert!(events.is_empty());

    // New times, same bytes: read, not re-chunked.
    let later = SystemTime::now() + Duration::from_secs(5);
    fs::File::options().write(true).open(root.join("b.txt"))?.set_modified(later)?;
    let (r, events) = reindex(&mut ix)?;
    assert_eq!((r.read, r.touched, r.updated, r.unchanged), (1, 1, 0, 2), "{r:?}");
    assert!(events.is_empty());

    fs::write(root.join("b.txt"), "bravo blueberry")?;
    let (r, events) = reindex(&mut ix)?;
    assert_eq!((r.read, r.updated, r.unchanged), (1, 1, 2), "{r:?}");
    assert_eq!(events, [IndexEvent::Updated { path: "docs/b.txt".into(), chunks: 1 }]);
    assert!(hits(&ix, "banana")?.is_empty());
    assert_eq!(hits(&ix, "blueberry")?, ["docs/b.txt"]);

    fs::rename(root.join("a.md"), root.join("sub/renamed.md"))?;
    fs::remove_file(root.join("sub/c.html"))?;
    let (r, events) = reindex(&mut ix)?;
    assert_eq!((r.added, r.removed, r.unchanged), (1, 2, 1), "{r:?}");
    assert!(events.contains(&IndexEvent::Removed { path: "docs/sub/c.html".into() }));
    assert_eq!(hits(&ix, "apple")?, ["docs/sub/renamed.md"]);
    assert!(hits(&ix, "charlie")?.is_empty());
    assert_eq!(ix.summary()?.files, 2);

    let info = &ix.roots()?[0];
    assert_eq!((info.files, info.chunks, info.skipped), (2, 2, 0));
    assert!(ix.remove_root(&root)?);
    assert!(hits(&ix, "apple")?.is_empty());
    assert_eq!(ix.summary()?, Default::default());
    Ok(())
}

#[test]
fn skipped_files_are_reported_once_per_version() -> Result {
    let limits = Limits { max_file_bytes: 100, ..Limits::default() };
    let (tmp, mut ix) = setup(limits, &[("ok.txt", "fine"), ("bin.txt", "a\0b")])?;
    let root = tmp.path().join("docs");
    fs::write(root.join("big.md"), "x ".repeat(100))?;
    let (r, events) = reindex(&mut ix)?;
    assert_eq!((r.added, r.skipped), (1, 2), "{r:?}");
    assert!(events.contains(&IndexEvent::Skipped {
        path: "docs/bin.txt".into(),
        reason: SkipReason::Binary
    }));
    assert!(events.contains(&IndexEvent::Skipped {
        path: "docs/big.md".into(),
        reason: SkipReason::TooLarge { size: 200, max: 100 }
    }));
    assert_eq!(ix.roots()?[0].skipped, 2);

    let (r, events) = reindex(&mut ix)?;
    assert_eq!((r.skipped, r.still_skipped, r.read), (0, 2, 0), "{r:?}");
    assert!(events.is_empty(), "{events:?}");

    // Fixed: indexed, and no longer counted as skipped. Deleted: forgotten.
    fs::write(root.join("bin.txt"), "now text")?;
    fs::remove_file(root.join("big.md"))?;
    let (r, _) = reindex(&mut ix)?;
    assert_eq!((r.added, r.skipped, r.still_skipped), (1, 0, 0), "{r:?}");
    assert_eq!(ix.roots()?[0].skipped, 0);

    // A text file that turns binary leaves the index, reported once.
    fs::write(root.join("ok.txt"), [0u8, 1, 2])?;
    let (r, events) = reindex(&mut ix)?;
    assert_eq!(r.skipped, 1, "{events:?}");
    assert!(hits(&ix, "fine")?.is_empty());
    assert_eq!(ix.summary()?.files, 1);
    Ok(())
}

#[test]
fn unreadable_files_are_skipped_once_and_retried_after_chmod() -> Result {
    let (tmp, mut ix) = setup(Limits::default(), &[("locked.txt", "secretive")])?;
    let file = tmp.path().join("docs/locked.txt");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o000))?;
    if fs::File::open(&file).is_ok() {
        // Running as root: permissions do not stop reads, so there is nothing to test.
        return Ok(());
    }
    let (r, events) = reindex(&mut ix)?;
    assert_eq!(r.skipped, 1);
    assert!(matches!(&events[0], IndexEvent::Skipped { reason: SkipReason::Unreadable(_), .. }));
    assert_eq!(reindex(&mut ix)?.0.still_skipped, 1);
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644))?;
    assert_eq!(reindex(&mut ix)?.0.added, 1);
    Ok(())
}

#[test]
fn symlinks_never_lead_out_of_a_root() -> Result {
    let (tmp, mut ix) = setup(Limits::default(), &[("inside.txt", "harmless")])?;
    let outside = tmp.path().join("outside");
    write(&outside, &[("secret.txt", "topsecret password"), ("d/deep.md", "topsecret too")])?;
    let root = tmp.path().join("docs");
    std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("link.txt"))?;
    std::os::unix::fs::symlink(&outside, root.join("linkdir"))?;
    std::os::unix::fs::symlink("/etc/passwd", root.join("passwd.txt"))?;
    let (r, _) = reindex(&mut ix)?;
    assert_eq!((r.seen, r.added), (1, 1), "{r:?}");
    assert!(hits(&ix, "topsecret")?.is_empty());
    assert!(hits(&ix, "root")?.is_empty());

    // A root that became a link is not followed either: its files leave the index.
    let moved = tmp.path().join("moved");
    fs::rename(&root, &moved)?;
    std::os::unix::fs::symlink(&outside, &root)?;
    let (r, events) = reindex(&mut ix)?;
    assert_eq!(r.removed, 1);
    assert!(matches!(events[0], IndexEvent::RootMissing { .. }), "{events:?}");
    assert!(hits(&ix, "topsecret")?.is_empty());
    Ok(())
}

#[test]
fn per_file_chunks_are_bounded_and_reported_once() -> Result {
    let limits = Limits { max_chunks_per_file: 2, ..Limits::default() };
    let long = (0..5).map(|i| format!("para{i} {}\n\n", "x".repeat(600))).collect::<String>();
    let (_tmp, mut ix) = setup(limits, &[("long.txt", &long)])?;
    let (_, events) = reindex(&mut ix)?;
    assert!(events.contains(&IndexEvent::Truncated { path: "docs/long.txt".into(), kept: 2 }));
    assert_eq!(ix.summary()?.chunks, 2);
    assert!(hits(&ix, "para4")?.is_empty());
    assert!(reindex(&mut ix)?.1.is_empty());
    Ok(())
}

#[test]
fn a_full_index_says_so_and_fills_up_once_there_is_room() -> Result {
    let limits = Limits { max_total_chunks: 2, ..Limits::default() };
    let files = [("a.txt", "one"), ("b.txt", "two"), ("c.txt", "three")];
    let (tmp, mut ix) = setup(limits, &files)?;
    let (r, events) = reindex(&mut ix)?;
    assert_eq!((r.added, r.over_limit), (2, 1), "{r:?}");
    assert!(events
        .iter()
        .any(|e| matches!(e, IndexEvent::Limit { what, .. } if what.contains("full"))));
    // Still full: reported again (it is the index's state), and still not indexed.
    assert_eq!(reindex(&mut ix)?.0.over_limit, 1);
    fs::remove_file(tmp.path().join("docs/a.txt"))?;
    let (r, _) = reindex(&mut ix)?;
    assert_eq!((r.removed, r.added, r.over_limit), (1, 1, 0), "{r:?}");
    assert_eq!(hits(&ix, "three")?, ["docs/c.txt"]);

    let limits = Limits { max_index_bytes: 1, ..Limits::default() };
    let (_tmp, mut ix) = setup(limits, &files)?;
    assert_eq!(reindex(&mut ix)?.0.over_limit, 3);
    Ok(())
}

#[test]
fn walk_bounds_are_reported() -> Result {
    let limits = Limits { max_files_per_root: 2, ..Limits::default() };
    let files = [("a.txt", "a"), ("b.txt", "b"), ("c.txt", "c")];
    let (_tmp, mut ix) = setup(limits, &files)?;
    let (r, events) = reindex(&mut ix)?;
    assert_eq!(r.added, 2);
    let limit =
        |e: &IndexEvent| matches!(e, IndexEvent::Limit { what, .. } if what.contains("2 files"));
    assert!(events.iter().any(limit), "{events:?}");

    let limits = Limits { max_depth: 1, ..Limits::default() };
    let (_tmp, mut ix) = setup(limits, &[("a.txt", "a"), ("d/deep.txt", "deep")])?;
    let (r, events) = reindex(&mut ix)?;
    assert_eq!((r.added, r.skipped), (1, 1), "{r:?}");
    let deep = IndexEvent::Skipped { path: "docs/d".into(), reason: SkipReason::TooDeep };
    assert_eq!(events.iter().filter(|e| **e == deep).count(), 1, "{events:?}");
    assert_eq!(reindex(&mut ix)?.0.still_skipped, 1);
    Ok(())
}

#[test]
fn two_writers_and_a_reader_share_one_file() -> Result {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("docs");
    let files: Vec<(String, String)> = (0..150)
        .map(|i| (format!("f{i}.txt"), format!("word{i} shared text\n\nmore {i}")))
        .collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    write(&root, &files)?;
    let db = tmp.path().join("index.sqlite");
    Index::open(&db)?.add_root(&root)?;
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || -> std::result::Result<IndexReport, RagError> {
                Index::open(&db)?.reindex(None, &mut |_| {})
            })
        })
        .collect();
    let reader = Index::open(&db)?;
    for _ in 0..20 {
        reader.search(&KnowledgeQuery { query: "shared word7".into(), k: 4 })?;
    }
    for w in writers {
        w.join().map_err(|_| "writer panicked")??;
    }
    assert_eq!(reader.summary()?.files, 150);
    assert_eq!(reader.summary()?.chunks, 150);
    assert_eq!(hits(&reader, "word42")?, ["docs/f42.txt"]);
    Ok(())
}
