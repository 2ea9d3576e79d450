//! The README's quickstart, run as written (issue 14, friction 1): every command of the block
//! between `<!-- quickstart -->` and `<!-- /quickstart -->`, in a fresh home directory, with the
//! built `nova` first on the PATH. Long-running commands (`nova serve`, `nova worker`) run in
//! the background until they say they are up; every other one must exit 0 without an error.
//! The only preparation is copying the models in, as a cache would have them.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The commands of the quickstart block: continuation lines joined, comments dropped.
fn quickstart(readme: &str) -> Vec<String> {
    let start = readme.find("<!-- quickstart -->").expect("README has a <!-- quickstart --> block");
    let end = readme[start..].find("<!-- /quickstart -->").expect("the block is closed") + start;
    let mut commands = Vec::new();
    let mut current = String::new();
    let mut in_code = false;
    for line in readme[start..end].lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            continue;
        }
        let line = strip_comment(line);
        let (body, continued) = match line.trim_end().strip_suffix('\\') {
            Some(b) => (b, true),
            None => (line.trim_end(), false),
        };
        current.push_str(body.trim());
        if continued {
            current.push(' ');
        } else if !current.trim().is_empty() {
            commands.push(std::mem::take(&mut current).trim().to_owned());
        }
    }
    commands
}

/// `line` without a trailing `# comment` outside quotes.
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

struct Background {
    child: Child,
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn shell(home: &Path, bin: &Path, command: &str) -> Command {
    let mut cmd = Command::new("sh");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    cmd.arg("-c")
        .arg(command)
        .env_clear()
        .env("PATH", path)
        .env("HOME", home)
        .env("NOVA_THREADS", "1")
        .current_dir(home);
    cmd
}

/// Starts a long-running command and waits (up to 120 s) for a line containing `ready`.
fn start(home: &Path, bin: &Path, command: &str, ready: &str) -> Background {
    // `exec`, so the process killed on drop is nova itself, not a shell that would leave it.
    let child = shell(home, bin, &format!("exec {command}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh");
    // Killed and waited for on every path, a panic's included.
    let mut bg = Background { child };
    let child = &mut bg.child;
    let rx = crate::output_lines(child);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            let up = line.contains(ready);
            seen.push(line);
            if up {
                println!("$ {command}\n{}", seen.join("\n"));
                return bg;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("`{command}` exited ({status}) before saying {ready:?}: {seen:#?}");
        }
    }
    panic!("`{command}` never said {ready:?}: {seen:#?}");
}

fn seed_models(data_dir: &Path) {
    let models = data_dir.join("models");
    std::fs::create_dir_all(&models).unwrap();
    for f in ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"] {
        std::os::unix::fs::symlink(crate::shared_home().join("models").join(f), models.join(f))
            .unwrap();
    }
}

#[test]
fn every_command_of_the_readme_quickstart_runs_as_written() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let commands = quickstart(&readme);
    println!("{commands:#?}");
    assert!(commands.iter().any(|c| c.starts_with("nova serve")), "{commands:?}");
    assert!(commands.iter().any(|c| c.starts_with("nova worker")), "{commands:?}");
    assert!(commands.iter().any(|c| c.starts_with("curl")), "{commands:?}");

    let home = tempfile::tempdir().unwrap();
    seed_models(&home.path().join(".local/share/nova"));
    seed_models(&home.path().join(".local/share/nova-worker"));
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_nova"));
    let bin = bin.parent().unwrap();
    let mut running = Vec::new();
    for command in &commands {
        if command.starts_with("nova serve") {
            running.push(start(home.path(), bin, command, "nova gateway listening on"));
        } else if command.starts_with("nova worker") {
            running.push(start(home.path(), bin, command, "joined the gateway"));
        } else {
            let out = crate::run(&mut shell(home.path(), bin, command), Duration::from_secs(180));
            let (stdout, stderr) = (crate::stdout(&out), crate::stderr(&out));
            println!("$ {command}\n{stdout}{stderr}");
            assert!(out.status.success(), "`{command}` failed: {stdout}{stderr}");
            assert!(!stdout.trim().is_empty(), "`{command}` printed nothing: {stderr}");
            assert!(!stdout.contains("\"error\""), "`{command}` answered an error: {stdout}");
        }
    }
}

#[test]
fn the_quickstart_parser_joins_lines_and_drops_comments() {
    let md = "x\n<!-- quickstart -->\n```sh\na --b 'c # d' \\\n  e  # note\n# only a comment\nf\n```\ntext\n<!-- /quickstart -->\n";
    assert_eq!(quickstart(md), vec!["a --b 'c # d' e".to_owned(), "f".to_owned()]);
}
