// Shared by the cargo-fuzz target fuzz_targets/update_manifest.rs and the stable corpus replay
// (crates/cli/tests/fuzz_replay.rs), so CI and the fuzzer check the same properties.
//
// The update manifest parser and the checks a worker applies to it. A parsed manifest
// re-parses to itself; signed by the trusted key it verifies (unless its version is not
// semver) and any change to a signed field breaks the signature; the policy never panics.

use std::sync::LazyLock;

use ed25519_dalek::Signer as _;
use nova_update::{Manifest, Policy, SigningKey, UpdateError, Version, MAX_MANIFEST};

static KEY: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::from_bytes(&[7; 32]));

/// The check: panics on a violation.
pub(crate) fn check(data: &[u8]) {
    let Ok(m) = Manifest::from_json(data) else { return };
    let json = m.to_json();
    if json.len() as u64 <= MAX_MANIFEST {
        let again = Manifest::from_json(json.as_bytes()).expect("a parsed manifest re-parses");
        assert_eq!(again, m);
    }
    let trusted = KEY.verifying_key();
    let _ = m.verify(&trusted);

    let mut signed = m.clone();
    signed.signature = hex::encode(KEY.sign(&signed.signed_message()).to_bytes());
    let release = match signed.verify(&trusted) {
        Ok(release) => release,
        Err(UpdateError::BadVersion(_)) => return,
        Err(e) => panic!("a manifest signed by the trusted key is refused: {e}"),
    };
    let mut tampered = signed.clone();
    tampered.sequence = tampered.sequence.wrapping_add(1);
    assert!(tampered.verify(&trusted).is_err(), "a changed sequence still verifies");
    let mut tampered = signed;
    tampered.sha256.push('0');
    assert!(tampered.verify(&trusted).is_err(), "a changed digest still verifies");

    let policy = Policy {
        running: Version::new(1, 2, 3),
        target: "x86_64-unknown-linux-gnu".into(),
        applied_sequence: 5,
    };
    let _ = policy.check(&release);
}
