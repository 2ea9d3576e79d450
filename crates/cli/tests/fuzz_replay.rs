//! The fuzz targets' checks (`fuzz/checks/`) on stable, in CI: every committed corpus input, then
//! a bounded number of seeded mutations of them (byte flips, inserts, deletes, splices), for
//! each target. Coverage-guided fuzzing needs nightly and an instrumented build of every
//! dependency (12-15 minutes on two cores), so it is `scripts/fuzz.sh`, not part of CI; this
//! keeps the same properties checked on every run, deterministically, in seconds.
//!
//! A failing input is written to `target/fuzz-replay/<target>.bin`; replay it under the fuzzer
//! with `cargo +nightly fuzz run --fuzz-dir fuzz <target> target/fuzz-replay/<target>.bin`.
//! `NOVA_FUZZ_REPLAY_CASES` sets the mutations per target (default 3,000; 500 for bundles);
//! `NOVA_FUZZ_REPLAY_SEED` changes them.

mod p2p_frame {
    include!("../../../fuzz/checks/p2p_frame.rs");
}
mod request_json {
    include!("../../../fuzz/checks/request_json.rs");
}
mod sse {
    include!("../../../fuzz/checks/sse.rs");
}
mod update_bundle {
    include!("../../../fuzz/checks/update_bundle.rs");
}
mod update_manifest {
    include!("../../../fuzz/checks/update_manifest.rs");
}

use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    path::{Path, PathBuf},
};

/// Longest mutated input: the corpus inputs are small and the checks' limits are what matter.
const MAX_INPUT: usize = 64 * 1024;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = root().join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let inputs: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).expect("read")).collect();
    assert!(!inputs.is_empty(), "{} has no seeds", dir.display());
    inputs
}

/// xorshift64*: reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four random edits of `input`, sometimes spliced with `other`.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(v.len() + 1);
                // Bytes that matter to the parsers: quotes, braces, digits, NUL, high bits.
                let b = *b"\"{}[]:,0-9\0\xff\n e".get(rng.below(16)).unwrap_or(&0);
                v.insert(i, b);
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = rng.below(v.len() - i) + 1;
                v.drain(i..i + n.min(16));
            }
            4 if !other.is_empty() => {
                let i = rng.below(v.len() + 1);
                let j = rng.below(other.len());
                v.truncate(i);
                v.extend_from_slice(&other[j..]);
            }
            _ if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = (rng.below(v.len() - i) + 1).min(64);
                let chunk: Vec<u8> = v[i..i + n].to_vec();
                v.splice(i..i, chunk);
            }
            _ => v.push(rng.next() as u8),
        }
    }
    v.truncate(MAX_INPUT);
    v
}

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs `check` on `input`; on a panic, saves the input and fails naming it.
fn run(target: &str, what: &str, input: &[u8], check: fn(&[u8])) {
    if catch_unwind(AssertUnwindSafe(|| check(input))).is_err() {
        let dir = root().join("target/fuzz-replay");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{target}.bin"));
        let _ = std::fs::write(&path, input);
        panic!("{target}: the check failed on {what}; input saved to {}", path.display());
    }
}

fn replay(target: &str, check: fn(&[u8]), default_cases: u64) {
    let seeds = corpus(target);
    for (i, s) in seeds.iter().enumerate() {
        run(target, &format!("corpus input {i}"), s, check);
    }
    let cases = env_u64("NOVA_FUZZ_REPLAY_CASES", default_cases);
    let seed = env_u64("NOVA_FUZZ_REPLAY_SEED", 0x6E6F_7661);
    let mut rng = Rng(seed ^ target.len() as u64 ^ 0x9E37_79B9_7F4A_7C15);
    for n in 0..cases {
        let a = &seeds[rng.below(seeds.len())];
        let b = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, a, b);
        run(target, &format!("mutation {n} (seed {seed})"), &input, check);
    }
}

#[test]
fn p2p_frames() {
    replay("p2p_frame", p2p_frame::check, 3000);
}

#[test]
fn request_bodies() {
    replay("request_json", request_json::check, 3000);
}

#[test]
fn upstream_event_streams() {
    replay("sse", sse::check, 3000);
}

#[test]
fn update_bundles() {
    // Each case writes and reads an archive: fewer cases keep it to seconds.
    replay("update_bundle", update_bundle::check, 500);
}

#[test]
fn update_manifests() {
    replay("update_manifest", update_manifest::check, 3000);
}
