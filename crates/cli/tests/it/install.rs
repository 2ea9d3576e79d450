//! The installers, run for real in a temporary HOME with a prebuilt binary (`NOVA_BIN`) and the
//! model linked into their data dir: the second run must change nothing, secrets must be 0600,
//! and no shell profile may be touched.

use std::{
    collections::BTreeMap,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::{home, run, stderr};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every entry under `dir`: kind, size, mode, mtime in ns and link target; any change shows.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            let m = std::fs::symlink_metadata(&p).expect("metadata");
            let link = std::fs::read_link(&p).ok();
            out.insert(
                p.strip_prefix(dir).expect("prefix").to_path_buf(),
                format!(
                    "{:?} {} {:o} {} {:?}",
                    m.file_type(),
                    m.len(),
                    m.mode(),
                    m.mtime_nsec() + m.mtime() * 1_000_000_000,
                    link
                ),
            );
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

fn installer(script: &str, user_home: &Path, data: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(repo().join("scripts").join(script));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", user_home)
        .env("NOVA_HOME", data)
        .env("NOVA_BIN", env!("CARGO_BIN_EXE_nova"));
    cmd
}

fn twice(script: &str, args: &[&str]) -> (tempfile::TempDir, tempfile::TempDir) {
    let user_home = tempfile::tempdir().expect("tempdir");
    let data = home();
    let first =
        run(&mut installer(script, user_home.path(), data.path(), args), Duration::from_secs(300));
    assert!(first.status.success(), "first run failed: {}", stderr(&first));
    let before = snapshot(data.path());
    let second =
        run(&mut installer(script, user_home.path(), data.path(), args), Duration::from_secs(300));
    assert!(second.status.success(), "second run failed: {}", stderr(&second));
    assert!(stderr(&second).contains("nothing to do"), "{}", stderr(&second));
    assert_eq!(before, snapshot(data.path()), "the second run changed the data dir");
    // No profile, rc file or service was written into HOME.
    let home_entries: Vec<_> = std::fs::read_dir(user_home.path()).expect("read_dir").collect();
    assert!(home_entries.is_empty(), "the installer wrote into HOME: {home_entries:?}");
    let bin = data.path().join("bin/nova");
    let v = run(Command::new(&bin).arg("--version"), Duration::from_secs(30));
    assert!(v.status.success(), "the installed binary does not run");
    (user_home, data)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn controller_installer_is_idempotent() {
    let (_h, data) = twice("install_controller.sh", &[]);
    for f in ["swarm-secret", "api-token", "controller.env"] {
        assert_eq!(mode(&data.path().join(f)), 0o600, "{f}");
    }
    let secret = std::fs::read_to_string(data.path().join("swarm-secret")).expect("secret");
    assert_eq!(secret.len(), 48, "24 random bytes in hex: {secret:?}");
}

#[test]
fn worker_installer_is_idempotent_and_needs_a_secret() {
    let args = ["--join", "127.0.0.1:8788", "--secret", "s3cret"];
    let (h, data) = twice("install_worker.sh", &args);
    let env = std::fs::read_to_string(data.path().join("worker.env")).expect("worker.env");
    assert!(
        env.contains("NOVA_JOIN=127.0.0.1:8788") && env.contains("NOVA_SWARM_SECRET=s3cret"),
        "{env}"
    );
    assert_eq!(mode(&data.path().join("worker.env")), 0o600);

    let out = run(
        &mut installer("install_worker.sh", h.path(), data.path(), &["--join", "x:1"]),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--secret is required"), "{}", stderr(&out));
}
