//! `nova ask` end to end.

use std::time::Duration;

use crate::{nova, run, shared_home, stderr, stdout};

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn answers_paris_reproducibly_with_the_default_model() {
    let home = shared_home();
    let ask = || {
        run(
            nova(&home).args([
                "ask",
                "--no-pull",
                "--temperature",
                "0",
                "What is the capital of France?",
            ]),
            LIMIT,
        )
    };
    let first = ask();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).contains("Paris"), "{}", stdout(&first));
    let second = ask();
    assert_eq!(stdout(&first), stdout(&second), "greedy answers must repeat exactly");
}

#[test]
fn runs_the_gemma_base_model() {
    let out = run(
        nova(&shared_home()).args([
            "ask",
            "--no-pull",
            "--model",
            "gemma3-270m",
            "--raw",
            "--temperature",
            "0",
            "--max-tokens",
            "16",
            "--stats",
            "The capital of France is",
        ]),
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).trim().is_empty());
    assert!(stderr(&out).contains("tok/s"), "{}", stderr(&out));
}

#[test]
fn unknown_model_is_a_clear_error() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = run(nova(home.path()).args(["ask", "--model", "llama-9000", "hi"]), LIMIT);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("unknown model \"llama-9000\"") && err.contains("smollm2-135m"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_missing_model_file_is_file_not_found() {
    let home = tempfile::tempdir().expect("tempdir");
    let missing = home.path().join("missing.gguf");
    for path in ["/missing.gguf", missing.to_str().expect("utf-8")] {
        let out = run(nova(home.path()).args(["ask", "-m", path, "hi"]), LIMIT);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(err.contains(&format!("file not found: {path}")), "{err}");
        assert!(!err.contains("unknown model") && !err.contains("panicked"), "{err}");
    }
}

#[test]
fn missing_model_without_pull_names_the_fix() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = run(nova(home.path()).args(["ask", "--no-pull", "hi"]), LIMIT);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nova model pull smollm2-135m"), "{}", stderr(&out));
}

#[test]
fn corrupt_model_files_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = crate::shared_home().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let bytes = std::fs::read(&model).expect("the default model is pulled by scripts/test.sh");
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).expect("write");
    let garbage = dir.path().join("garbage.gguf");
    std::fs::write(&garbage, b"<html>not found</html>").expect("write");
    for (path, why) in [(&truncated, "truncated GGUF file"), (&garbage, "not a GGUF file")] {
        let out = run(nova(dir.path()).args(["ask", "--model"]).arg(path).arg("hi"), LIMIT);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(why), "{}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"));
    }
}

#[test]
fn invalid_parameters_are_refused_before_loading() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = run(nova(home.path()).args(["ask", "--temperature", "9", "hi"]), LIMIT);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("temperature must be between 0 and 2"), "{}", stderr(&out));
    let out = run(nova(home.path()).args(["ask", "--temperature", "hot", "hi"]), LIMIT);
    assert_eq!(out.status.code(), Some(2), "clap usage errors exit 2");
}

#[test]
fn bench_concurrency_levels_are_bounded_before_loading() {
    let home = tempfile::tempdir().expect("tempdir");
    let bench = |extra: &[&str]| {
        let mut args = vec!["bench", "engine", "--no-pull"];
        args.extend_from_slice(extra);
        run(nova(home.path()).args(args), LIMIT)
    };
    for bad in [
        &["--concurrency", "65"][..],
        &["--concurrency", "0"],
        &["--concurrency", "4", "--stream-tokens", "100000"],
    ] {
        let out = bench(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
    }
    let many = vec!["1"; 17].join(",");
    let out = bench(&["--concurrency", &many]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("at most 16 levels"), "{}", stderr(&out));
}

#[test]
fn bench_engine_prints_json_figures() {
    let out = run(
        nova(&shared_home()).args([
            "bench",
            "engine",
            "--no-pull",
            "--pp",
            "32",
            "--tg",
            "8",
            "--runs",
            "2",
            "--json",
        ]),
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("json");
    let tests = v["tests"].as_array().expect("tests");
    assert_eq!(tests.len(), 2);
    assert!(tests.iter().all(|t| t["mean"].as_f64().unwrap_or(0.0) > 0.0), "{v}");
    assert_eq!(v["threads"], 2);
    assert!(v["peak_rss_kib"].as_u64().unwrap_or(0) > 10_000);
}
