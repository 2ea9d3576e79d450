//! Request bodies of `POST /v1/chat/completions` and `POST /submit`, through the real router:
//! body extraction, JSON parsing and validation. Whatever the bytes, the answer is a 4xx, or
//! the request passed every check and reached the swarm (503 from the fuzz swarm, which also
//! checks that the admitted request survives the wire to a worker).
//!
//! Input: one byte choosing the endpoint (`s`: /submit, anything else: chat), then the body.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread().build().expect("a tokio runtime")
});

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    let path = if which == b's' { "/submit" } else { "/v1/chat/completions" };
    let status = RUNTIME.block_on(nova_api::fuzzing::post(path, body.to_vec()));
    assert!(
        (400..500).contains(&status) || status == 503,
        "{path} answered {status} to {:?}",
        String::from_utf8_lossy(body)
    );
});
