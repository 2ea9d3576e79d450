//! Small things a newcomer hits on first use (issue 14, friction 6): each hint names what to
//! type, for the setup in use.

use std::time::Duration;

fn nova_out(home: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = crate::run(crate::nova(home).args(args), Duration::from_secs(120));
    (out.status.success(), crate::stdout(&out), crate::stderr(&out))
}

#[test]
fn the_missing_model_hint_names_the_data_dir_in_use() {
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_str().unwrap();
    let (ok, _, err) = nova_out(empty.path(), &["--data-dir", dir, "ask", "--no-pull", "hi"]);
    assert!(!ok);
    let want = format!("nova model pull smollm2-135m --data-dir {dir}");
    assert!(err.contains(&want), "{err}");
}

#[test]
fn a_base_model_asked_a_question_suggests_raw_and_a_chat_model_does_not() {
    let home = crate::home();
    let ask = |extra: &[&str]| {
        let mut args = vec!["ask", "--no-pull", "--max-tokens", "4", "--temperature", "0"];
        args.extend_from_slice(extra);
        nova_out(home.path(), &args)
    };
    let (ok, _, err) = ask(&["-m", "gemma3-270m", "What is the capital of France?"]);
    assert!(ok, "{err}");
    assert!(err.contains("gemma3-270m has no chat template") && err.contains("--raw"), "{err}");
    let (ok, _, err) = ask(&["-m", "gemma3-270m", "--raw", "The capital of France is"]);
    assert!(ok && !err.contains("chat template"), "{err}");
    let (ok, _, err) = ask(&["-m", "smollm2-135m", "What is the capital of France?"]);
    assert!(ok && !err.contains("chat template"), "{err}");
}

#[test]
fn urls_are_taken_as_pasted_and_bad_ones_get_an_example() {
    let home = crate::home();
    // No scheme: http, as curl takes it. Nothing listens there, so status fails to connect,
    // not to parse.
    let (ok, _, err) = nova_out(home.path(), &["status", "--url", "127.0.0.1:9", "--token", "x"]);
    assert!(!ok);
    assert!(!err.contains("relative URL"), "{err}");
    assert!(err.contains("127.0.0.1:9"), "{err}");
    let (ok, _, err) = nova_out(home.path(), &["status", "--url", "ftp://h:21", "--token", "x"]);
    assert!(!ok && err.contains("only http:// and https://"), "{err}");
}

#[test]
fn only_the_commands_that_write_log_files_take_file_log() {
    let home = crate::home();
    for (cmd, has) in [("serve", true), ("worker", true), ("ask", false), ("status", false)] {
        let (ok, out, err) = nova_out(home.path(), &[cmd, "--help"]);
        assert!(ok, "{err}");
        assert_eq!(out.contains("--file-log"), has, "nova {cmd} --help: {out}");
    }
}
