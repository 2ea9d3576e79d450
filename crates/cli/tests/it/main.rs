//! Multi-process tests of the real `nova` binary on the real models. Models come from the data
//! dir that `scripts/test.sh` fills; tests that write use a temporary data dir of their own.

mod ask;
mod model;
mod serve;
mod swarm;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

/// The data dir holding the pulled catalog models.
pub(crate) fn shared_home() -> PathBuf {
    std::env::var_os("NOVA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/nova")))
        .expect("HOME or NOVA_HOME must be set")
}

/// `nova` with a clean environment and the given data dir.
pub(crate) fn nova(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nova"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("NOVA_HOME", home)
        .env("NOVA_THREADS", "2");
    cmd
}

/// Runs `cmd` with a deadline, so a hang fails the test.
pub(crate) fn run(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn nova");
    let started = std::time::Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "nova did not finish within {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
