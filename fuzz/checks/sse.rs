// Shared by the cargo-fuzz target fuzz_targets/sse.rs and the stable corpus replay
// (crates/cli/tests/fuzz_replay.rs), so CI and the fuzzer check the same properties.
//
// The `openai_http` backend's parser of an upstream server's event stream. Whatever the
// bytes, it never panics, and it decodes the same however the network splits them.
//
// Input: one byte giving the piece size (1-256), then the stream's bytes.

use nova_engine::fuzzing::decode_sse;

/// The check: panics on a violation.
pub(crate) fn check(data: &[u8]) {
    let Some((&piece, input)) = data.split_first() else { return };
    let whole = decode_sse(input, input.len());
    let split = decode_sse(input, usize::from(piece) + 1);
    // EngineError has no PartialEq; its Debug form shows every field.
    assert_eq!(format!("{whole:?}"), format!("{split:?}"), "pieces of {}", usize::from(piece) + 1);
}
