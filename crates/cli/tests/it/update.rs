//! Self-update end to end: a real gateway serves real signed bundles (`nova bundle build` +
//! `nova bundle sign`) from its bundle dir, and a real worker, running from a copy of the
//! `nova` binary in a temp dir, updates itself over p2p or refuses.
//!
//! The "newer" binaries are the same build stamped with a newer version by
//! `nova bundle build --version` (see nova_update::stamp); the broken ones are shell scripts
//! that fail the health check.

use std::{
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{run, spawn_cmd, stdout, Proc};

const TOKEN: &str = "update-token";
const SECRET: &str = "update-secret-for-tests";

/// A signer: a data dir holding a release key.
struct Signer(tempfile::TempDir);

impl Signer {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("tempdir"))
    }

    fn nova(&self) -> Command {
        crate::nova(self.0.path())
    }

    fn pubkey(&self) -> String {
        let out = run(self.nova().args(["bundle", "key"]), Duration::from_secs(30));
        assert!(out.status.success(), "{}", crate::stderr(&out));
        stdout(&out).trim().to_string()
    }

    /// `nova bundle build` + `nova bundle sign`; returns the archive (its .sig is beside it).
    fn bundle(&self, binary: &Path, version: &str, sequence: u64, out: &Path) -> PathBuf {
        let seq = sequence.to_string();
        let o = run(
            self.nova()
                .args(["bundle", "build", "--fast", "--version", version, "--sequence", &seq])
                .arg("--binary")
                .arg(binary)
                .arg("--out")
                .arg(out),
            Duration::from_secs(120),
        );
        assert!(o.status.success(), "build: {}", crate::stderr(&o));
        let archive = out.join(format!("nova-swarm-{version}.tgz"));
        let o = run(self.nova().arg("bundle").arg("sign").arg(&archive), Duration::from_secs(60));
        assert!(o.status.success(), "sign: {}", crate::stderr(&o));
        archive
    }
}

/// A gateway with a bundle dir, and a worker running from a copy of the binary.
struct Setup {
    _gateway: Proc,
    url: String,
    bundles: tempfile::TempDir,
    scratch: tempfile::TempDir,
    bin: tempfile::TempDir,
    worker_home: PathBuf,
    worker: Proc,
    original_ino: u64,
}

fn nova_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_nova"))
}

impl Setup {
    fn start(trusted: &str) -> Self {
        let bundles = tempfile::tempdir().expect("tempdir");
        let bundle_dir = bundles.path().to_str().expect("utf-8");
        let (gateway, url, join) =
            crate::spawn_gateway(TOKEN, SECRET, &["--bundle-dir", bundle_dir]);
        // The worker runs from its own copy, which the update replaces.
        let bin = tempfile::tempdir().expect("tempdir");
        let exe = bin.path().join("nova");
        std::fs::copy(nova_bin(), &exe).expect("copy nova");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let original_ino = std::fs::metadata(&exe).expect("stat").ino();
        let home = crate::home();
        std::fs::write(home.path().join("trusted-release.pub"), format!("{trusted}\n"))
            .expect("trust");
        let worker_home = home.path().to_path_buf();
        let mut cmd = Command::new(&exe);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("NOVA_HOME", home.path())
            .env("NOVA_THREADS", "1")
            .args(["worker", "--join", &join, "--secret", SECRET, "--no-pull"])
            .args(["--model", "smollm2-135m", "--heartbeat-ms", "500"]);
        let worker = spawn_cmd(cmd, home);
        worker.wait_for("worker ");
        let on = worker.wait_for("self-update: ");
        assert!(on.starts_with("on, trusting release key"), "{on}");
        let scratch = tempfile::tempdir().expect("tempdir");
        Self { _gateway: gateway, url, bundles, scratch, bin, worker_home, worker, original_ino }
    }

    fn exe(&self) -> PathBuf {
        self.bin.path().join("nova")
    }

    /// Makes `archive` (and its .sig) the only bundle the gateway serves.
    fn publish(&self, archive: &Path) {
        for e in std::fs::read_dir(self.bundles.path()).expect("read_dir") {
            std::fs::remove_file(e.expect("entry").path()).expect("unpublish");
        }
        let name = archive.file_name().expect("name").to_string_lossy().into_owned();
        let sig = archive.with_file_name(format!("{name}.sig"));
        std::fs::rename(archive, self.bundles.path().join(&name)).expect("publish");
        std::fs::rename(&sig, self.bundles.path().join(format!("{name}.sig"))).expect("publish");
    }

    /// Waits until the gateway sees the worker ready at `version`.
    async fn wait_version(&self, version: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v: Value = reqwest::Client::new()
                .get(format!("{}/v1/swarm", self.url))
                .bearer_auth(TOKEN)
                .send()
                .await
                .expect("swarm")
                .json()
                .await
                .expect("json");
            let ready =
                v["workers"].as_array().into_iter().flatten().any(|w| {
                    w["state"] == "ready" && w["status"]["version"].as_str() == Some(version)
                });
            if ready {
                return v;
            }
            assert!(Instant::now() < deadline, "the worker is not ready at {version}: {v}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn reported_version(&self, exe: &Path) -> String {
        let out = run(Command::new(exe).args(["version", "--json"]), Duration::from_secs(30));
        let v: Value = serde_json::from_slice(&out.stdout).expect("version json");
        v["version"].as_str().expect("version").to_string()
    }

    /// The old binary still runs and is untouched: same process, same file, nothing staged,
    /// nothing downloaded left behind.
    async fn assert_untouched(&mut self, pid: u32) {
        assert!(self.worker.child.try_wait().expect("wait").is_none(), "the worker died");
        assert_eq!(self.worker.child.id(), pid);
        assert_eq!(std::fs::metadata(self.exe()).expect("stat").ino(), self.original_ino);
        let mut names: Vec<String> = std::fs::read_dir(self.bin.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["nova"], "only the original binary is there");
        let updates = self.worker_home.join("updates");
        let left = std::fs::read_dir(&updates).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0, "downloads left in {}", updates.display());
        self.wait_version("0.1.0").await;
    }
}

#[tokio::test]
async fn a_good_update_is_applied_and_replays_and_downgrades_are_refused() {
    let signer = Signer::new();
    let mut s = Setup::start(&signer.pubkey());
    let pid = s.worker.child.id();
    s.wait_version("0.1.0").await;

    let good = signer.bundle(&nova_bin(), "0.2.0", 2, s.scratch.path());
    s.publish(&good);
    let said = s.worker.wait_for("update: 0.2.0 installed");
    assert!(said.contains(s.exe().to_str().expect("utf-8")), "{said}");
    // Re-exec'd in place: same process, new binary, new version.
    s.worker.wait_for("worker ");
    let v = s.wait_version("0.2.0").await;
    assert_eq!(s.worker.child.id(), pid);
    assert_eq!(s.reported_version(&s.exe()), "0.2.0");
    assert_eq!(s.reported_version(&s.bin.path().join("nova.prev")), "0.1.0");
    assert_eq!(v["workers"].as_array().map(Vec::len), Some(1), "{v}");
    // `nova status` shows it too.
    let home = tempfile::tempdir().expect("tempdir");
    let out = run(
        crate::nova(home.path()).args(["status", "--url", &s.url, "--token", TOKEN]),
        Duration::from_secs(30),
    );
    assert!(stdout(&out).contains("0.2.0"), "{}", stdout(&out));
    let state: Value = serde_json::from_slice(
        &std::fs::read(s.worker_home.join("update-state.json")).expect("state"),
    )
    .expect("json");
    assert_eq!(state["applied_sequence"], 2, "{state}");

    // An old bundle, validly signed before 0.2.0 was released, played back: its version is
    // newer, but its sequence is not.
    let replay = signer.bundle(&nova_bin(), "0.3.0", 1, s.scratch.path());
    s.publish(&replay);
    let said = s.worker.wait_for("update refused (replay): 0.3.0: ");
    assert!(said.contains("sequence 1") && said.contains("sequence 2"), "{said}");

    // A freshly signed downgrade.
    let down = signer.bundle(&nova_bin(), "0.1.5", 5, s.scratch.path());
    s.publish(&down);
    let said = s.worker.wait_for("update refused (downgrade): 0.1.5: ");
    assert!(said.contains("0.1.5") && said.contains("0.2.0"), "{said}");

    assert!(s.worker.child.try_wait().expect("wait").is_none());
    assert_eq!(s.reported_version(&s.exe()), "0.2.0");
    s.wait_version("0.2.0").await;
}

#[tokio::test]
async fn forged_tampered_and_truncated_bundles_are_refused() {
    let signer = Signer::new();
    let mut s = Setup::start(&signer.pubkey());
    let pid = s.worker.child.id();
    s.wait_version("0.1.0").await;

    // Signed by a key the worker does not trust.
    let forger = Signer::new();
    let forged = forger.bundle(&nova_bin(), "0.2.0", 2, s.scratch.path());
    s.publish(&forged);
    let said = s.worker.wait_for("update refused (forged_signature): 0.2.0: ");
    assert!(said.contains(&signer.pubkey()), "{said}");
    s.assert_untouched(pid).await;

    // Signed, then altered: one byte in the middle of the archive. Altered before it is
    // published, so the worker can never fetch the intact copy first.
    let tampered = signer.bundle(&nova_bin(), "0.2.1", 3, s.scratch.path());
    let mut bytes = std::fs::read(&tampered).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&tampered, &bytes).expect("tamper");
    s.publish(&tampered);
    s.worker.wait_for("update: fetching 0.2.1");
    s.worker.wait_for("update refused (checksum_mismatch): 0.2.1: ");
    s.assert_untouched(pid).await;

    // The gateway's copy is cut short, so the download ends early.
    let cut = signer.bundle(&nova_bin(), "0.2.2", 4, s.scratch.path());
    let len = std::fs::metadata(&cut).expect("stat").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .and_then(|f| f.set_len(len / 2))
        .expect("truncate");
    s.publish(&cut);
    let said = s.worker.wait_for("update failed (truncated): 0.2.2: ");
    assert!(said.contains(&format!("of {len} bytes")), "{said}");
    s.assert_untouched(pid).await;
}

/// A shell script answering the health check: healthy when `healthy_if` matches `$0`.
fn script(dir: &Path, name: &str, version: &str, healthy_if: &str) -> PathBuf {
    let path = dir.join(name);
    // Every branch exits: the stamp appended after the script is never run.
    let body = format!(
        "#!/bin/sh\ncase \"$0\" in\n  {healthy_if}) ;;\n  *) echo 'cannot load libnova.so' >&2; exit 127;;\nesac\ncase \"$1\" in\n  version) echo '{{\"version\":\"{version}\"}}'; exit 0;;\n  self-check) echo 'self-check: the model engine does not start' >&2; exit 1;;\nesac\nexit 2\n"
    );
    std::fs::write(&path, body).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// Like [`script`] but passing `self-check` wherever it is healthy.
fn passing_script(dir: &Path, name: &str, version: &str, healthy_if: &str) -> PathBuf {
    let path = script(dir, name, version, healthy_if);
    let body = std::fs::read_to_string(&path).expect("read").replace(
        "self-check) echo 'self-check: the model engine does not start' >&2; exit 1;;",
        "self-check) exit 0;;",
    );
    std::fs::write(&path, body).expect("write");
    path
}

#[tokio::test]
async fn binaries_failing_their_health_check_are_refused_or_rolled_back() {
    let signer = Signer::new();
    let mut s = Setup::start(&signer.pubkey());
    let pid = s.worker.child.id();
    s.wait_version("0.1.0").await;

    // Fails its self-check in the staging directory: never installed.
    let broken = script(s.scratch.path(), "broken", "0.2.0", "*");
    let bundle = signer.bundle(&broken, "0.2.0", 2, s.scratch.path());
    s.publish(&bundle);
    let said = s.worker.wait_for("update refused (health_check): 0.2.0: ");
    assert!(said.contains("the model engine does not start"), "{said}");
    s.assert_untouched(pid).await;

    // Healthy where it is staged, broken at its final path: swapped in, found failing, and
    // the previous binary put back.
    let flaky = passing_script(s.scratch.path(), "flaky", "0.2.1", "*/.nova-staging-*");
    let bundle = signer.bundle(&flaky, "0.2.1", 3, s.scratch.path());
    s.publish(&bundle);
    let said = s.worker.wait_for("update refused (rolled_back): 0.2.1: ");
    assert!(said.contains("cannot load libnova.so") && said.contains("rolled back"), "{said}");
    s.assert_untouched(pid).await;
    assert_eq!(s.reported_version(&s.exe()), "0.1.0");
    // It keeps working as the swarm's worker.
    let r = reqwest::Client::new()
        .post(format!("{}/submit", s.url))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"prompt": "Hi", "params": {"max_tokens": 4}}))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("submit");
    assert_eq!(r.status().as_u16(), 200);
}
