//! The whole path on real archives in temp dirs: build, sign, verify, extract, install, roll
//! back, and every refusal. The "binaries" are shell scripts that answer the health check.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use flate2::{write::GzEncoder, Compression};

use super::*;

type Res = Result<(), Box<dyn std::error::Error>>;

fn v(s: &str) -> Version {
    Version::parse(s).expect("version")
}

fn write_exe(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A script that passes the health check as `version`, unless told otherwise.
fn script(version: &str, self_check: &str) -> String {
    format!(
        "case \"$1\" in\n  version) echo '{{\"version\":\"{version}\"}}';;\n  self-check) {self_check};;\n  *) exit 2;;\nesac"
    )
}

struct Fixture {
    dir: tempfile::TempDir,
    key: SigningKey,
    trusted: VerifyingKey,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = load_or_create_release_key(&dir.path().join("release")).expect("key");
        let trusted = key.verifying_key();
        Self { dir, key, trusted }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Builds and signs a bundle of a script reporting `version`.
    fn bundle(&self, version: &str, sequence: u64, self_check: &str) -> (PathBuf, Manifest) {
        let bin = self.path(&format!("src-{version}-{sequence}"));
        write_exe(&bin, &script(version, self_check));
        let out = self.path(&format!("out-{sequence}"));
        let (archive, info) = build(&BuildOptions {
            binary: bin,
            version: v(version),
            stamp: false,
            sequence,
            target: TARGET.into(),
            out_dir: out,
            level: 1,
        })
        .expect("build");
        assert_eq!(info.sequence, sequence);
        let m = sign(&archive, &self.key, &Limits::default()).expect("sign");
        (archive, m)
    }

    /// An installed "running" binary at version 0.1.0.
    fn installed(&self) -> Installer {
        fs::create_dir_all(self.path("bin")).expect("mkdir");
        let exe = self.path("bin/nova");
        write_exe(&exe, &script("0.1.0", "exit 0"));
        Installer::new(exe).with_timeout(Duration::from_secs(5))
    }

    fn policy(&self, running: &str, applied: u64) -> Policy {
        Policy { running: v(running), target: TARGET.into(), applied_sequence: applied }
    }
}

fn reported(exe: &Path) -> String {
    let out = std::process::Command::new(exe).args(["version", "--json"]).output().expect("run");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<_> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

#[test]
fn a_good_bundle_is_verified_extracted_and_installed_keeping_the_previous() -> Res {
    let f = Fixture::new();
    let (archive, m) = f.bundle("0.2.0", 5, "exit 0");
    assert_eq!(archive.file_name().and_then(|n| n.to_str()), Some("nova-swarm-0.2.0.tgz"));
    // The manifest survives its file.
    let sig = archive.with_file_name(manifest_file_name(&v("0.2.0")));
    m.write(&sig)?;
    let m = Manifest::read(&sig)?;
    let release = m.verify(&f.trusted)?;
    f.policy("0.1.0", 4).check(&release)?;
    release.check_archive(&archive)?;

    let installer = f.installed();
    let staging = installer.staging_dir()?;
    let x = extract(&archive, staging.path(), &Limits::default(), &release)?;
    assert_eq!(x.info.version, "0.2.0");
    let done = installer.install(&x.binary, &release.version)?;
    drop(staging);
    assert_eq!(reported(installer.exe()), r#"{"version":"0.2.0"}"#);
    assert_eq!(reported(&done.prev), r#"{"version":"0.1.0"}"#);
    assert_eq!(names(&f.path("bin")), ["nova", "nova.prev"], "nothing else left behind");
    // And back.
    installer.rollback()?;
    assert_eq!(reported(installer.exe()), r#"{"version":"0.1.0"}"#);
    assert_eq!(names(&f.path("bin")), ["nova"]);
    Ok(())
}

#[test]
fn forged_or_altered_manifests_are_refused() -> Res {
    let f = Fixture::new();
    let (_, m) = f.bundle("0.2.0", 1, "exit 0");
    // Signed by another key.
    let other = load_or_create_release_key(&f.path("other"))?;
    let (archive2, _) = f.bundle("0.2.1", 2, "exit 0");
    let forged = sign(&archive2, &other, &Limits::default())?;
    let e = forged.verify(&f.trusted).unwrap_err();
    assert_eq!(e.kind(), "forged_signature", "{e}");
    assert!(e.to_string().contains(&public_key_hex(&f.trusted)), "{e}");
    // A signed field changed afterwards.
    for change in [
        |m: &mut Manifest| m.version = "9.9.9".into(),
        |m: &mut Manifest| m.sequence += 1,
        |m: &mut Manifest| m.sha256 = "00".repeat(32),
        |m: &mut Manifest| m.size += 1,
        |m: &mut Manifest| m.signature = "zz".into(),
        |m: &mut Manifest| m.signature.truncate(10),
    ] {
        let mut bad = m.clone();
        change(&mut bad);
        assert_eq!(bad.verify(&f.trusted).unwrap_err().kind(), "forged_signature");
    }
    // Claiming the trusted key changes nothing.
    let mut claims = forged.clone();
    claims.key = public_key_hex(&f.trusted);
    assert_eq!(claims.verify(&f.trusted).unwrap_err().kind(), "forged_signature");
    // Garbage manifests.
    assert_eq!(Manifest::from_json(b"{").unwrap_err().kind(), "bad_manifest");
    let mut evil = m.clone();
    evil.file = "../../etc/passwd".into();
    assert_eq!(Manifest::from_json(evil.to_json().as_bytes()).unwrap_err().kind(), "bad_manifest");
    assert_eq!(Manifest::from_json(&vec![b' '; 20_000]).unwrap_err().kind(), "too_large");
    Ok(())
}

#[test]
fn policy_refuses_downgrades_reinstalls_replays_and_other_targets() -> Res {
    let f = Fixture::new();
    let (_, m) = f.bundle("0.2.0", 10, "exit 0");
    let r = m.verify(&f.trusted)?;
    assert!(f.policy("0.1.9", 9).check(&r).is_ok());
    assert_eq!(f.policy("0.3.0", 0).check(&r).unwrap_err().kind(), "downgrade");
    assert_eq!(f.policy("0.2.0", 0).check(&r).unwrap_err().kind(), "same_version");
    // Pre-releases sort below their release.
    assert!(f.policy("0.2.0-rc.1", 0).check(&r).is_ok());
    let e = f.policy("0.1.0", 10).check(&r).unwrap_err();
    assert_eq!(e.kind(), "replay", "{e}");
    assert!(e.to_string().contains("sequence 10"), "{e}");
    // A replay is refused as such even when the version alone would pass.
    assert_eq!(f.policy("0.0.1", 11).check(&r).unwrap_err().kind(), "replay");
    let mut p = f.policy("0.1.0", 0);
    p.target = "riscv64gc-unknown-linux-gnu".into();
    assert_eq!(p.check(&r).unwrap_err().kind(), "wrong_target");
    Ok(())
}

#[test]
fn tampered_truncated_and_padded_archives_are_refused() -> Res {
    let f = Fixture::new();
    let (archive, m) = f.bundle("0.2.0", 1, "exit 0");
    let r = m.verify(&f.trusted)?;
    let good = fs::read(&archive)?;
    let mut tampered = good.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x55;
    fs::write(&archive, &tampered)?;
    let e = r.check_archive(&archive).unwrap_err();
    assert_eq!(e.kind(), "checksum_mismatch", "{e}");
    fs::write(&archive, &good[..good.len() - 100])?;
    let e = r.check_archive(&archive).unwrap_err();
    assert_eq!(e.kind(), "truncated", "{e}");
    assert!(e.is_transient());
    let mut padded = good.clone();
    padded.push(0);
    fs::write(&archive, &padded)?;
    assert_eq!(r.check_archive(&archive).unwrap_err().kind(), "too_large");
    fs::write(&archive, &good)?;
    r.check_archive(&archive)?;
    Ok(())
}

/// One raw tar entry for hand-made (hostile) archives.
struct Raw<'a> {
    name: &'a [u8],
    kind: tar::EntryType,
    data: &'a [u8],
}

fn raw_tgz(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for e in entries {
        let mut h = tar::Header::new_gnu();
        // Written byte for byte: `set_path` would refuse the hostile names.
        h.as_old_mut().name[..e.name.len()].copy_from_slice(e.name);
        h.set_size(e.data.len() as u64);
        h.set_mode(0o755);
        h.set_entry_type(e.kind);
        if e.kind == tar::EntryType::Symlink {
            h.set_link_name("/bin/sh").expect("link");
        }
        h.set_cksum();
        tar.append(&h, e.data).expect("append");
    }
    tar.into_inner().expect("tar").finish().expect("gz")
}

fn sums(entries: &[(&str, &[u8])]) -> String {
    use sha2::Digest as _;
    entries
        .iter()
        .map(|(n, d)| format!("{}  {n}\n", hex::encode(sha2::Sha256::digest(d))))
        .collect()
}

fn release_for(info: &[u8], sequence: u64) -> Release {
    let i: VersionInfo = serde_json::from_slice(info).expect("info");
    Release {
        manifest: Manifest {
            format: "nova-swarm-bundle/1".into(),
            file: "x.tgz".into(),
            version: i.version.clone(),
            sequence,
            target: i.target,
            built_at_ms: 0,
            size: 0,
            sha256: String::new(),
            key: String::new(),
            signature: String::new(),
        },
        version: v(&i.version),
    }
}

#[test]
fn hostile_or_broken_archive_contents_are_refused() -> Res {
    use tar::EntryType::{Regular, Symlink};
    let bin: &[u8] = b"#!/bin/sh\nexit 0\n";
    let info = format!(r#"{{"version":"0.2.0","target":"{TARGET}","built_at_ms":1,"sequence":3}}"#);
    let info = info.as_bytes();
    let good_sums = sums(&[("nova", bin), ("version.json", info)]);
    let reg = |name: &'static [u8], data: &'static [u8]| Raw { name, kind: Regular, data };
    let leak = |s: String| -> &'static [u8] { Box::leak(s.into_bytes().into_boxed_slice()) };
    let (info, good_sums) = (leak(String::from_utf8_lossy(info).into_owned()), leak(good_sums));
    let r = release_for(info, 3);
    let cases: Vec<(&str, Vec<Raw<'_>>, &str)> = vec![
        (
            "ok",
            vec![reg(b"version.json", info), reg(b"SHA256SUMS", good_sums), reg(b"nova", bin)],
            "",
        ),
        ("traversal", vec![reg(b"../nova", bin)], "bad_archive"),
        ("absolute", vec![reg(b"/etc/nova", bin)], "bad_archive"),
        ("symlink", vec![Raw { name: b"nova", kind: Symlink, data: b"" }], "bad_archive"),
        ("unexpected", vec![reg(b"nova2", bin)], "bad_archive"),
        ("duplicate", vec![reg(b"version.json", info), reg(b"version.json", info)], "bad_archive"),
        ("missing sums", vec![reg(b"version.json", info), reg(b"nova", bin)], "bad_archive"),
        (
            "binary swapped",
            vec![
                reg(b"version.json", info),
                reg(b"SHA256SUMS", good_sums),
                reg(b"nova", b"#!/bin/sh\nrm -rf ~\n"),
            ],
            "checksum_mismatch",
        ),
        (
            "sums unlisted",
            vec![reg(b"version.json", info), reg(b"SHA256SUMS", b""), reg(b"nova", bin)],
            "bad_archive",
        ),
    ];
    for (what, entries, kind) in cases {
        let dir = tempfile::tempdir()?;
        let archive = dir.path().join("b.tgz");
        fs::write(&archive, raw_tgz(&entries))?;
        let staging = dir.path().join("staging");
        fs::create_dir(&staging)?;
        let got = extract(&archive, &staging, &Limits::default(), &r);
        match (got, kind) {
            (Ok(x), "") => assert_eq!(fs::read(&x.binary)?, bin, "{what}"),
            (Err(e), k) => assert_eq!(e.kind(), k, "{what}: {e}"),
            (Ok(_), k) => panic!("{what}: accepted, expected {k}"),
        }
        // Nothing ever lands outside the staging directory.
        assert_eq!(names(dir.path()), ["b.tgz", "staging"], "{what}");
    }

    // version.json that disagrees with the signed manifest.
    let dir = tempfile::tempdir()?;
    let archive = dir.path().join("b.tgz");
    fs::write(
        &archive,
        raw_tgz(&[reg(b"version.json", info), reg(b"SHA256SUMS", good_sums), reg(b"nova", bin)]),
    )?;
    let e = extract(&archive, dir.path(), &Limits::default(), &release_for(info, 4)).unwrap_err();
    assert_eq!(e.kind(), "manifest_mismatch", "{e}");

    // Limits: a binary over the limit is refused without writing more than the limit.
    let dir = tempfile::tempdir()?;
    let archive = dir.path().join("b.tgz");
    fs::write(&archive, raw_tgz(&[reg(b"nova", bin)]))?;
    let small = Limits { binary: 4, ..Limits::default() };
    assert_eq!(extract(&archive, dir.path(), &small, &r).unwrap_err().kind(), "too_large");
    let small = Limits { small: 4, ..Limits::default() };
    fs::write(&archive, raw_tgz(&[reg(b"version.json", info)]))?;
    assert_eq!(extract(&archive, dir.path(), &small, &r).unwrap_err().kind(), "too_large");

    // A truncated gzip stream and a non-gzip file.
    let whole =
        raw_tgz(&[reg(b"version.json", info), reg(b"SHA256SUMS", good_sums), reg(b"nova", bin)]);
    for (what, bytes) in [("truncated", &whole[..whole.len() / 2]), ("not gzip", &b"hello"[..])] {
        let dir = tempfile::tempdir()?;
        let archive = dir.path().join("b.tgz");
        fs::write(&archive, bytes)?;
        let e = extract(&archive, dir.path(), &Limits::default(), &r).unwrap_err();
        assert_eq!(e.kind(), "bad_archive", "{what}: {e}");
    }
    Ok(())
}

#[test]
fn a_binary_failing_its_health_check_is_never_installed() -> Res {
    let f = Fixture::new();
    for (what, body, needle) in [
        ("self-check fails", script("0.2.0", "echo broken >&2; exit 1"), "broken"),
        ("wrong version", script("0.1.5", "exit 0"), "reports version 0.1.5"),
        ("crashes", "kill -SEGV $$".to_string(), "signal"),
        ("hangs", "sleep 30".to_string(), "did not finish"),
    ] {
        let installer = f.installed().with_timeout(Duration::from_secs(1));
        let staging = installer.staging_dir()?;
        let staged = staging.path().join("nova");
        write_exe(&staged, &body);
        let e = installer.install(&staged, &v("0.2.0")).unwrap_err();
        assert_eq!(e.kind(), "health_check", "{what}: {e}");
        assert!(e.to_string().contains(needle), "{what}: {e}");
        drop(staging);
        assert_eq!(reported(installer.exe()), r#"{"version":"0.1.0"}"#, "{what}");
        assert_eq!(names(&f.path("bin")), ["nova"], "{what}");
    }
    Ok(())
}

#[test]
fn a_binary_failing_after_the_swap_is_rolled_back() -> Res {
    let f = Fixture::new();
    let installer = f.installed();
    let staging = installer.staging_dir()?;
    let staged = staging.path().join("nova");
    // Healthy where it is staged, broken at its final path.
    let body = format!(
        "case \"$0\" in\n  *.nova-staging-*) ;;\n  *) echo 'missing library' >&2; exit 127;;\nesac\n{}",
        script("0.2.0", "exit 0")
    );
    write_exe(&staged, &body);
    let e = installer.install(&staged, &v("0.2.0")).unwrap_err();
    assert_eq!(e.kind(), "rolled_back", "{e}");
    assert!(e.to_string().contains("missing library"), "{e}");
    drop(staging);
    assert_eq!(reported(installer.exe()), r#"{"version":"0.1.0"}"#);
    assert_eq!(names(&f.path("bin")), ["nova"]);
    Ok(())
}

#[test]
fn stamped_bundles_report_their_version() -> Res {
    let f = Fixture::new();
    let bin = f.path("plain");
    write_exe(&bin, "exit 0");
    let (archive, info) = build(&BuildOptions {
        binary: bin.clone(),
        version: v("3.1.4"),
        stamp: true,
        sequence: 1,
        target: TARGET.into(),
        out_dir: f.path("out"),
        level: 6,
    })?;
    assert_eq!(info.version, "3.1.4");
    let r = sign(&archive, &f.key, &Limits::default())?.verify(&f.trusted)?;
    let staging = tempfile::tempdir()?;
    let x = extract(&archive, staging.path(), &Limits::default(), &r)?;
    assert_eq!(stamp::read(&x.binary), Some(v("3.1.4")));
    // Restamping replaces rather than stacks.
    let (archive, _) = build(&BuildOptions {
        binary: x.binary.clone(),
        version: v("3.2.0"),
        stamp: true,
        sequence: 2,
        target: TARGET.into(),
        out_dir: f.path("out2"),
        level: 0,
    })?;
    let r = sign(&archive, &f.key, &Limits::default())?.verify(&f.trusted)?;
    let staging = tempfile::tempdir()?;
    let x = extract(&archive, staging.path(), &Limits::default(), &r)?;
    assert_eq!(stamp::read(&x.binary), Some(v("3.2.0")));
    assert_eq!(fs::metadata(&x.binary)?.len(), fs::metadata(&bin)?.len() + stamp::LEN as u64);
    Ok(())
}

#[test]
fn the_shelf_serves_the_highest_sequence() -> Res {
    let f = Fixture::new();
    let shelf_dir = f.path("shelf");
    let shelf = Shelf::new(&shelf_dir).with_ttl(Duration::ZERO);
    assert!(shelf.latest().is_none(), "a missing directory is an empty shelf");
    for (version, seq) in [("0.2.0", 2), ("0.3.0", 3), ("0.2.5", 1)] {
        let (archive, m) = f.bundle(version, seq, "exit 0");
        fs::create_dir_all(&shelf_dir)?;
        fs::rename(&archive, shelf_dir.join(&m.file))?;
        m.write(&shelf_dir.join(manifest_file_name(&v(version))))?;
    }
    let mut junk = fs::File::create(shelf_dir.join("junk.tgz.sig"))?;
    junk.write_all(b"not json")?;
    // A manifest without its archive is skipped.
    let (_, orphan) = f.bundle("0.9.0", 9, "exit 0");
    orphan.write(&shelf_dir.join("nova-swarm-0.9.0.tgz.sig"))?;
    let (latest, bad) = shelf.scan();
    let latest = latest.expect("latest");
    assert_eq!(latest.manifest.version, "0.3.0");
    assert_eq!(Manifest::from_json(latest.manifest_json.as_bytes())?, latest.manifest);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert_eq!(shelf.latest().map(|p| p.manifest.sequence), Some(3));
    Ok(())
}
