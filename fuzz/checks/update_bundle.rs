// Shared by the cargo-fuzz target fuzz_targets/update_bundle.rs and the stable corpus replay
// (crates/cli/tests/fuzz_replay.rs), so CI and the fuzzer check the same properties.
//
// The update bundle reader (gzip, tar, `SHA256SUMS`, `version.json`) as a worker runs it on
// a downloaded archive. Whatever the bytes: no panic, nothing written outside the staging
// directory but the binary, and success only for a bundle that matches the release.

use nova_update::{extract, Limits, Manifest, Release, Version, BINARY, FORMAT};

fn release() -> Release {
    let version = Version::new(1, 2, 4);
    Release {
        manifest: Manifest {
            format: FORMAT.into(),
            file: "nova-swarm-1.2.4.tgz".into(),
            version: version.to_string(),
            sequence: 7,
            target: "x86_64-unknown-linux-gnu".into(),
            built_at_ms: 0,
            size: 0,
            sha256: String::new(),
            key: String::new(),
            signature: String::new(),
        },
        version,
    }
}

/// The check: panics on a violation.
pub(crate) fn check(data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let archive = dir.path().join("bundle.tgz");
    std::fs::write(&archive, data).expect("write the archive");
    let staging = dir.path().join("staging");
    std::fs::create_dir(&staging).expect("create staging");
    let limits = Limits { archive: 1 << 20, binary: 64 * 1024, small: 4096 };
    let release = release();
    if let Ok(x) = extract(&archive, &staging, &limits, &release) {
        assert_eq!(x.binary, staging.join(BINARY));
        let len = std::fs::metadata(&x.binary).expect("the binary exists").len();
        assert!(len <= limits.binary);
        assert_eq!(x.info.version, release.manifest.version);
        assert_eq!(x.info.sequence, release.manifest.sequence);
    }
    for entry in std::fs::read_dir(&staging).expect("read staging") {
        let name = entry.expect("an entry").file_name();
        assert_eq!(name, BINARY, "extract wrote {name:?}");
    }
    let mut top: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read the directory")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    top.sort();
    assert_eq!(top, ["bundle.tgz", "staging"], "extract wrote outside staging");
}
