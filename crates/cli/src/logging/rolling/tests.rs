use std::sync::{
    atomic::{AtomicI64, Ordering},
    Arc,
};

use super::*;

/// 2024-02-28, so the next day tests the leap day.
const DAY: i64 = 19_781;

fn writer(dir: &Path, ext: &'static str, limits: Limits) -> (RollingFile, Arc<AtomicI64>) {
    let today = Arc::new(AtomicI64::new(DAY));
    let clock = Arc::clone(&today);
    let w = RollingFile::open_with_clock(
        dir,
        "nova",
        ext,
        limits,
        Box::new(move || clock.load(Ordering::SeqCst)),
    )
    .expect("open");
    (w, today)
}

fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    n.sort();
    n
}

#[test]
fn dates_are_civil_utc_dates() {
    assert_eq!(date(0), "1970-01-01");
    assert_eq!(date(DAY), "2024-02-28");
    assert_eq!(date(DAY + 1), "2024-02-29");
    assert_eq!(date(DAY + 2), "2024-03-01");
    assert_eq!(date(10_957), "2000-01-01");
    assert_eq!(date(-1), "1969-12-31");
}

#[test]
fn rotates_daily_and_by_size_keeping_the_newest_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("logs");
    let (mut w, today) = writer(&dir, "log", Limits { max_bytes: 10, max_files: 3 });
    // Someone else's files in the same directory are never touched.
    fs::write(dir.join("notes.txt"), "mine").expect("write");
    fs::write(dir.join("nova.2000-01-01.jsonl"), "other writer").expect("write");

    w.write_all(b"aaaa\n").expect("write");
    w.write_all(b"bbbb\n").expect("write");
    assert_eq!(fs::read_to_string(dir.join("nova.2024-02-28.log")).expect("read"), "aaaa\nbbbb\n");
    // The file is full: the next line starts part 1 of the same day.
    w.write_all(b"cccc\n").expect("write");
    assert_eq!(fs::read_to_string(dir.join("nova.2024-02-28.1.log")).expect("read"), "cccc\n");
    // A line longer than the cap still goes somewhere whole: into a fresh part.
    w.write_all(b"a long line past the cap\n").expect("write");
    assert!(dir.join("nova.2024-02-28.2.log").exists());

    today.store(DAY + 1, Ordering::SeqCst);
    w.write_all(b"next day\n").expect("write");
    assert_eq!(
        names(&dir),
        [
            "notes.txt",
            "nova.2000-01-01.jsonl",
            "nova.2024-02-28.1.log",
            "nova.2024-02-28.2.log",
            "nova.2024-02-29.log"
        ]
    );
}

#[test]
fn parts_sort_numerically_when_pruning() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut w, _) = writer(tmp.path(), "jsonl", Limits { max_bytes: 2, max_files: 2 });
    for _ in 0..12 {
        w.write_all(b"x\n").expect("write");
    }
    // Parts 10 and 11 are the newest, although "10" < "9" as text.
    assert_eq!(names(tmp.path()), ["nova.2024-02-28.10.jsonl", "nova.2024-02-28.11.jsonl"]);
}

#[test]
fn a_restart_appends_to_the_newest_part_with_room() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let limits = Limits { max_bytes: 8, max_files: 10 };
    {
        let (mut w, _) = writer(tmp.path(), "log", limits);
        w.write_all(b"1234567\n").expect("write");
        w.write_all(b"abc\n").expect("write");
    }
    let (mut w, _) = writer(tmp.path(), "log", limits);
    w.write_all(b"def\n").expect("write");
    assert_eq!(names(tmp.path()), ["nova.2024-02-28.1.log", "nova.2024-02-28.log"]);
    assert_eq!(
        fs::read_to_string(tmp.path().join("nova.2024-02-28.1.log")).expect("read"),
        "abc\ndef\n"
    );
}

#[test]
fn an_unusable_directory_fails_at_open_and_later_failures_drop_lines() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A file where the directory should be: fails even as root, unlike chmod.
    fs::write(tmp.path().join("logs"), "").expect("write");
    let limits = Limits { max_bytes: 100, max_files: 2 };
    assert!(RollingFile::open(&tmp.path().join("logs"), "nova", "log", limits).is_err());

    let dir = tmp.path().join("gone");
    let (mut w, today) = writer(&dir, "log", limits);
    fs::remove_dir_all(&dir).expect("rm");
    fs::write(&dir, "").expect("a file in its place");
    today.store(DAY + 1, Ordering::SeqCst);
    // Rolling over now fails; the line is dropped, not an error.
    assert_eq!(w.write(b"lost\n").expect("never fails"), 5);
    assert!(w.paused_until.is_some());
    assert_eq!(w.write(b"lost too\n").expect("never fails"), 9);
}

#[test]
fn only_our_exact_pattern_counts_as_ours() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (w, _) = writer(tmp.path(), "log", Limits { max_bytes: 100, max_files: 2 });
    assert_eq!(w.parse("nova.2024-02-28.log"), Some(("2024-02-28".into(), 0)));
    assert_eq!(w.parse("nova.2024-02-28.7.log"), Some(("2024-02-28".into(), 7)));
    for other in [
        "nova.2024-02-28.jsonl",
        "nova.2024-02-28.07.log",
        "nova.2024-2-28.log",
        "nova.latest.log",
        "xnova.2024-02-28.log",
        "nova.2024-02-28.log.bak",
        "nova..log",
    ] {
        assert_eq!(w.parse(other), None, "{other}");
    }
}
