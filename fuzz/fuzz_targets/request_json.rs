//! cargo-fuzz target: the input format and the properties checked are in ../checks/request_json.rs,
//! which the stable corpus replay in CI (crates/cli/tests/fuzz_replay.rs) runs too.
#![no_main]

include!("../checks/request_json.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
