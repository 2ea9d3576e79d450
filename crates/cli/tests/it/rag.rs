//! `nova rag …` end to end: the real binary, a temporary data dir, generated documents.

use std::{
    fs,
    path::Path,
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use crate::{nova, run, stderr, stdout};

const LIMIT: Duration = Duration::from_secs(60);

fn rag(home: &Path, args: &[&str]) -> Output {
    run(nova(home).arg("rag").args(args), LIMIT)
}

/// Runs `nova rag ARGS`, asserts it succeeded, returns its stdout.
fn ok(home: &Path, args: &[&str]) -> String {
    let out = rag(home, args);
    assert!(out.status.success(), "nova rag {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// Runs `nova rag ARGS`, asserts it failed with exit code 1 and no panic, returns its stderr.
fn fails(home: &Path, args: &[&str]) -> String {
    let out = rag(home, args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "nova rag {args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn p(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

#[test]
fn add_list_search_rm_round_trip_and_clear_errors() {
    let home = tempfile::tempdir().expect("tempdir");
    let docs = tempfile::tempdir().expect("tempdir");
    let notes = docs.path().join("notes");
    fs::create_dir_all(notes.join("sub")).expect("mkdir");
    fs::write(
        notes.join("owners.md"),
        "# Owners\n\n## Hardware\n\nProduct QX-4471 is owned by Marisol Vantablack.",
    )
    .expect("write");
    fs::write(notes.join("recipes.txt"), "Bread needs flour, water and salt.\n\nBake for an hour.")
        .expect("write");
    fs::write(
        notes.join("sub/page.html"),
        "<h1>Garden</h1><script>x()</script><p>Tomatoes like sun.</p>",
    )
    .expect("write");
    let h = home.path();

    let out = ok(h, &["add", p(&notes)]);
    let canonical = notes.canonicalize().expect("canonical");
    assert!(out.contains(&format!("added {}", canonical.display())), "{out}");
    assert!(out.contains("3 files, 3 chunks, 0 skipped"), "{out}");
    assert!(h.join("knowledge/index.sqlite").is_file());

    let out = ok(h, &["list"]);
    assert!(
        out.lines().any(|l| l.contains(p(&canonical)) && l.split_whitespace().next() == Some("3")),
        "{out}"
    );
    assert!(out.contains("total: 3 files, 3 chunks"), "{out}");

    let out = ok(h, &["search", "who", "owns", "QX-4471?"]);
    assert!(out.starts_with("1. notes/owners.md #0"), "{out}");
    assert!(out.contains("Owners > Hardware") && out.contains("Marisol Vantablack"), "{out}");
    assert!(!out.contains(p(docs.path())), "hits never show absolute paths: {out}");
    let out = ok(h, &["search", "-k", "1", "tomatoes", "bread"]);
    assert_eq!(out.lines().filter(|l| l.starts_with(char::is_numeric)).count(), 1, "{out}");
    assert!(!out.contains("x()"), "scripts are not indexed: {out}");
    assert!(ok(h, &["search", "the", "of"]).starts_with("no hits"));

    // Adding again changes nothing.
    assert!(ok(h, &["add", p(&notes)]).contains("3 files, 3 chunks"));

    let err = fails(h, &["add", p(&docs.path().join("missing"))]);
    assert!(err.contains("cannot add") && err.contains("No such file"), "{err}");
    let err = fails(h, &["add", p(&notes.join("recipes.txt"))]);
    assert!(err.contains("is not a directory"), "{err}");

    let out = ok(h, &["rm", p(&notes)]);
    assert!(out.contains("removed"), "{out}");
    assert!(ok(h, &["list"]).contains("no directories indexed"));
    assert!(ok(h, &["search", "Vantablack"]).starts_with("no hits"));
    let err = fails(h, &["rm", p(&notes)]);
    assert!(err.contains("not an indexed directory"), "{err}");

    // Garbage where the index should be: said plainly, with the fix.
    let bad = tempfile::tempdir().expect("tempdir");
    fs::create_dir(bad.path().join("knowledge")).expect("mkdir");
    fs::write(bad.path().join("knowledge/index.sqlite"), vec![0x42; 10_000]).expect("write");
    for args in [&["list"][..], &["search", "x"], &["reindex"], &["add", p(&notes)]] {
        let err = fails(bad.path(), args);
        assert!(err.contains("not a usable knowledge index") && err.contains("delete it"), "{err}");
    }
}

#[test]
fn reindex_reads_only_what_changed_and_reports_skips_once() {
    let home = tempfile::tempdir().expect("tempdir");
    let docs = tempfile::tempdir().expect("tempdir");
    let root = docs.path().join("kb");
    fs::create_dir(&root).expect("mkdir");
    for i in 0..20 {
        fs::write(root.join(format!("f{i:02}.md")), format!("# File {i}\n\nword{i} common text"))
            .expect("write");
    }
    let outside = docs.path().join("private.txt");
    fs::write(&outside, "outsidesecret").expect("write");
    std::os::unix::fs::symlink(&outside, root.join("leak.txt")).expect("symlink");
    std::os::unix::fs::symlink(docs.path(), root.join("leakdir")).expect("symlink");
    fs::write(root.join("blob.txt"), b"bin\0ary").expect("write");
    let h = home.path();

    let out = ok(h, &["add", p(&root)]);
    assert!(out.contains("skipped kb/blob.txt: binary"), "{out}");
    assert!(out.contains("20 files") && out.contains("1 skipped"), "{out}");
    assert!(ok(h, &["search", "outsidesecret"]).starts_with("no hits"));

    let out = ok(h, &["reindex"]);
    // blob.txt is found (and still skipped); the links are not followed.
    assert!(out.contains("21 files, 20 unchanged, 0 read"), "{out}");
    assert!(out.contains("0 newly skipped, 1 still skipped"), "{out}");
    assert!(!out.contains("blob"), "a skip is reported once: {out}");

    fs::write(root.join("f03.md"), "# File 3\n\nrewritten zanzibar").expect("write");
    fs::remove_file(root.join("f05.md")).expect("rm");
    let out = ok(h, &["reindex"]);
    assert!(out.contains("updated kb/f03.md (1 chunks)"), "{out}");
    assert!(out.contains("removed kb/f05.md"), "{out}");
    assert!(out.contains("20 files, 18 unchanged, 1 read (0 added, 1 updated"), "{out}");
    assert!(out.contains("1 removed"), "{out}");
    assert!(ok(h, &["search", "zanzibar"]).starts_with("1. kb/f03.md"));
    assert!(ok(h, &["search", "word5"]).starts_with("no hits"));
    assert!(ok(h, &["search", "outsidesecret"]).starts_with("no hits"));
}

/// splitmix64: a seeded generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: &[&str] = &[
    "river", "stone", "lamp", "garden", "copper", "violet", "rocket", "paper", "cloud", "bread",
    "engine", "harbor", "winter", "marble", "signal", "forest", "ladder", "meadow", "pepper",
];

/// File `i` at `version`: a few Markdown sections of common words, and one word only it has.
fn document(rng: &mut Rng, i: usize, version: u32) -> String {
    let mut s = format!("# Document {i}\n\nunique{i}v{version} marks this version.\n\n");
    for section in 0..4 {
        s.push_str(&format!("## Part {section}\n\n"));
        for _ in 0..2 {
            for _ in 0..60 + rng.below(60) {
                s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
                s.push(' ');
            }
            s.push_str("\n\n");
        }
    }
    s
}

/// `nova rag list` without the index's own size, which depends on its history.
fn contents(home: &Path) -> String {
    let out = ok(home, &["list"]);
    out.lines().map(|l| l.split("; index").next().unwrap_or(l)).collect::<Vec<_>>().join("\n")
}

/// The crash-safety requirement: an indexing process SIGKILLed at random points (ten
/// times or more, until at least five kills caught it working) leaves an index that opens and
/// answers, and a final run repairs it to exactly what a
/// fresh build gives.
#[test]
fn killed_indexing_leaves_an_index_that_opens_and_answers() {
    const FILES: usize = 600;
    let started = Instant::now();
    let mut rng = Rng(0x5eed);
    let docs = tempfile::tempdir().expect("tempdir");
    let corpus = docs.path().join("corpus");
    fs::create_dir(&corpus).expect("mkdir");
    let mut versions = vec![0u32; FILES];
    let mut present = vec![true; FILES];
    for (i, v) in versions.iter().enumerate() {
        fs::write(corpus.join(format!("d{i:04}.md")), document(&mut rng, i, *v)).expect("write");
    }

    // How long a full build takes here, so kills land inside the work on any machine.
    let scratch = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    ok(scratch.path(), &["add", p(&corpus)]);
    let full = t.elapsed();
    drop(scratch);

    let home = tempfile::tempdir().expect("tempdir");
    let mut mid_work = 0;
    // Kills land at a random time below `bound`. The full build was timed once, perhaps while
    // other tests loaded the machine: a kill that finds the indexer already done halves the
    // bound, so kills keep landing inside the work however fast the machine turns.
    let mut bound = full.as_micros() as u64 / 2 + 1;
    for round in 0..30 {
        if round >= 10 && mid_work >= 5 {
            break;
        }
        let args: &[&str] = if round == 0 {
            &["add", p(&corpus)]
        } else {
            // About two thirds of the corpus rewritten (or brought back), a few files deleted:
            // work for the reindex to be killed in the middle of.
            for _ in 0..FILES {
                let i = rng.below(FILES as u64) as usize;
                versions[i] += 1;
                present[i] = true;
                fs::write(corpus.join(format!("d{i:04}.md")), document(&mut rng, i, versions[i]))
                    .expect("write");
            }
            for _ in 0..10 {
                let i = rng.below(FILES as u64) as usize;
                if present[i] {
                    fs::remove_file(corpus.join(format!("d{i:04}.md"))).expect("rm");
                    present[i] = false;
                }
            }
            &["reindex"]
        };
        let mut child = nova(home.path())
            .arg("rag")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nova");
        let delay = Duration::from_micros(rng.below(bound));
        std::thread::sleep(delay);
        if child.try_wait().expect("try_wait").is_none() {
            mid_work += 1;
        } else {
            bound = (bound / 2).max(1_000);
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");

        let out = rag(home.path(), &["search", "river", "unique1v0"]);
        assert!(out.status.success(), "round {round}: search after a kill: {}", stderr(&out));
        let out = rag(home.path(), &["list"]);
        assert!(out.status.success(), "round {round}: list after a kill: {}", stderr(&out));
    }
    assert!(mid_work >= 5, "only {mid_work} kills hit a running indexer (full build {full:?})");

    // One complete run repairs whatever the kills left: the index equals a fresh build.
    let out = ok(home.path(), &["reindex"]);
    assert!(out.contains("0 newly skipped"), "{out}");
    let fresh = tempfile::tempdir().expect("tempdir");
    ok(fresh.path(), &["add", p(&corpus)]);
    assert_eq!(contents(home.path()), contents(fresh.path()));
    let live = present.iter().filter(|&&x| x).count();
    assert!(contents(home.path()).contains(&format!("total: {live} files")));
    let i = (0..FILES).find(|&i| present[i] && versions[i] > 0).expect("a rewritten file");
    let word = format!("unique{i}v{}", versions[i]);
    for h in [home.path(), fresh.path()] {
        let out = ok(h, &["search", &word]);
        assert!(out.starts_with(&format!("1. corpus/d{i:04}.md #0")), "{out}");
        assert!(ok(h, &["search", &format!("unique{i}v0")]).starts_with("no hits"));
    }
    eprintln!(
        "full build of {FILES} files: {full:?}; {mid_work}/10 kills mid-work; test took {:?}",
        started.elapsed()
    );
}
