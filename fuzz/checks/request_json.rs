// Shared by the cargo-fuzz target fuzz_targets/request_json.rs and the stable corpus replay
// (crates/cli/tests/fuzz_replay.rs), so CI and the fuzzer check the same properties.
//
// Request bodies of `POST /v1/chat/completions`, `POST /v1/embeddings`, `POST /submit`, and
// Ollama's `POST /api/chat` and `POST /api/generate`, through the real router: body extraction, JSON parsing and
// validation. Whatever the bytes, the answer is a 4xx, or the request passed every check and
// reached the swarm (503 from the fuzz swarm, which also checks that the admitted request
// survives the wire to a worker; a request that only loads a model finds the swarm empty).
//
// Input: one byte choosing the endpoint (`s`: /submit, `o`: /api/chat, `g`: /api/generate,
// `e`: /v1/embeddings, anything else: the OpenAI chat), then the body.

use std::sync::LazyLock;


static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread().build().expect("a tokio runtime")
});

/// The check: panics on a violation.
pub(crate) fn check(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else { return };
    let path = match which {
        b's' => "/submit",
        b'o' => "/api/chat",
        b'g' => "/api/generate",
        b'e' => "/v1/embeddings",
        _ => "/v1/chat/completions",
    };
    let status = RUNTIME.block_on(nova_api::fuzzing::post(path, body.to_vec()));
    assert!(
        (400..500).contains(&status) || status == 503,
        "{path} answered {status} to {:?}",
        String::from_utf8_lossy(body)
    );
}
