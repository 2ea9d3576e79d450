//! `/v1/embeddings` on the real binary and the real model (issue 14, item 8): a gateway with two
//! SmolLM2 workers, the official `openai` Python client (its default base64 transfer, explicit
//! base64, floats), the same vectors from either worker, an input longer than the model's
//! window refused by index, and a client that gives up freeing its worker.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

const TOKEN: &str = "embed-token";
const SECRET: &str = "embed-secret";

const SCRIPT: &str = r#"
import sys, base64, struct, openai
client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key=sys.argv[2])
texts = ["The cat is sleeping on the sofa.", "A cat naps on the couch.",
         "The stock market fell sharply today."]

# No encoding_format: the client asks for base64 and decodes it to floats itself.
first = client.embeddings.create(model="smollm2-135m", input=texts)
assert first.model == "smollm2-135m", first.model
assert [d.index for d in first.data] == [0, 1, 2]
vectors = [d.embedding for d in first.data]
width = len(vectors[0])
assert width == 576 and all(len(v) == width for v in vectors), width
for v in vectors:
    assert abs(sum(x * x for x in v) - 1.0) < 1e-4, "not L2-normalised"
assert first.usage.prompt_tokens > 0 and first.usage.total_tokens == first.usage.prompt_tokens

# Explicit base64: little-endian f32, exactly the same vectors.
raw = client.embeddings.create(model="nova", input=texts, encoding_format="base64")
assert raw.model == "smollm2-135m", raw.model
for d, v in zip(raw.data, vectors):
    b = base64.b64decode(d.embedding)
    assert list(struct.unpack("<%df" % (len(b) // 4), b)) == v, "base64 differs"

# Floats: the shortest form of each f32, which reads back to the same f32.
floats = client.embeddings.create(model="smollm2-135m", input=texts, encoding_format="float")
f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]
for d, v in zip(floats.data, vectors):
    assert [f32(x) for x in d.embedding] == v, "floats differ"

# One string, and the same text again: the same vector.
one = client.embeddings.create(model="smollm2-135m", input=texts[0])
assert one.data[0].embedding == vectors[0]

cos = lambda a, b: sum(x * y for x, y in zip(a, b))
print("cosine paraphrase %.3f, unrelated %.3f" % (cos(vectors[0], vectors[1]), cos(vectors[0], vectors[2])))

for what, args in {
    "token ids": dict(input=[[1, 2, 3]]),
    "dimensions": dict(input="hi", dimensions=64),
    "an empty input": dict(input=["hi", ""]),
}.items():
    try:
        client.embeddings.create(model="smollm2-135m", **args)
        raise SystemExit(what + " was not refused")
    except openai.BadRequestError as e:
        print(what, "refused:", e.status_code, e.message)
print("OK")
"#;

async fn embed(url: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/embeddings"))
        .bearer_auth(TOKEN)
        .json(&body)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("embeddings");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

fn vectors(v: &Value) -> Vec<Vec<f64>> {
    serde_json::from_value(json!(v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|d| d["embedding"].clone())
        .collect::<Vec<_>>()))
    .expect("float vectors")
}

/// The `name` of the worker whose id is `id`, from the swarm view.
async fn name_of(url: &str, id: &str) -> String {
    let view = crate::swarm_view(url, TOKEN).await;
    let w = view["workers"].as_array().expect("workers").iter().find(|w| w["worker"]["id"] == id);
    let name = w.and_then(|w| w["worker"]["name"].as_str());
    name.unwrap_or_else(|| panic!("{id} not in {view}")).to_owned()
}

#[tokio::test]
async fn the_openai_client_embeds_through_two_workers_and_either_gives_the_same_vectors() {
    let Some(python) = crate::client_python("NOVA_OPENAI_PYTHON") else { return };
    let (_g, url, join) = crate::spawn_gateway(TOKEN, SECRET, &[]);
    let mut a = Some(crate::swarm_worker(&join, SECRET, "emb-a", &[]));
    let mut b = Some(crate::swarm_worker(&join, SECRET, "emb-b", &[]));
    crate::wait_ready(&url, TOKEN, 2).await;

    let out = crate::run_python(python, SCRIPT, vec![url.clone(), TOKEN.into()]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.trim_end().ends_with("OK"), "{stdout}");

    // Either worker gives the same vectors: ask, stop the one that answered, ask again.
    let texts = json!(["Rivers carry water to the sea.", "Quarterly revenue grew by 4 %."]);
    let (status, first) = embed(&url, json!({"input": texts, "model": "smollm2-135m"})).await;
    assert_eq!(status, 200, "{first}");
    let answered = first["nova"]["worker"].as_str().expect("worker").to_owned();
    match name_of(&url, &answered).await.as_str() {
        "emb-a" => drop(a.take()),
        "emb-b" => drop(b.take()),
        other => panic!("answered by {other}"),
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let second = loop {
        let (status, v) = embed(&url, json!({"input": texts, "model": "smollm2-135m"})).await;
        if status == 200 && v["nova"]["worker"] != answered.as_str() {
            break v;
        }
        assert!(Instant::now() < deadline, "the other worker never answered: {status} {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(second["model"], "smollm2-135m");
    assert_eq!(vectors(&second), vectors(&first), "the same vectors from the other worker");

    // Longer than the model's window (2,048 tokens): a 400 naming the input, from the worker.
    let long = "word ".repeat(3000);
    let (status, v) = embed(&url, json!({"input": ["short", long]})).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "prompt_too_long", "{v}");
    let msg = v["error"]["message"].as_str().expect("message");
    assert!(msg.starts_with("input[1] is 300") && msg.contains("at most 2048"), "{msg}");

    // A client that gives up frees the worker: its embeddings stop at the next chunk.
    let heavy: Vec<String> = (0..100).map(|i| format!("{i} {}", "word ".repeat(1000))).collect();
    let client = reqwest::Client::new();
    let request = client
        .post(format!("{url}/v1/embeddings"))
        .bearer_auth(TOKEN)
        .json(&json!({ "input": heavy }))
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    assert!(request.is_err(), "100 inputs of 1,000 tokens took under 3 s: {request:?}");
    let t0 = Instant::now();
    loop {
        let view = crate::swarm_view(&url, TOKEN).await;
        let depth: u64 = view["workers"]
            .as_array()
            .expect("workers")
            .iter()
            .filter(|w| w["state"] != "gone")
            .map(|w| w["worker"]["queue_depth"].as_u64().unwrap_or(0))
            .sum();
        if depth == 0 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "the worker kept working: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("the worker was free {:?} after the client gave up", t0.elapsed());
    let (status, v) = embed(&url, json!({"input": "still here"})).await;
    assert_eq!(status, 200, "{v}");
    drop((a, b));
}

#[tokio::test]
async fn a_gateway_with_its_own_engine_embeds_on_it() {
    let args = ["serve", "--bind", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0"];
    let mut args = args.to_vec();
    args.extend(["--no-pull", "--model", "smollm2-135m", "--token", TOKEN, "--secret", SECRET]);
    let gateway = crate::spawn(2, &args);
    let url = gateway.wait_for("nova gateway listening on ");
    let (status, v) = embed(&url, json!({"input": ["one", "two"], "model": "nova"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["model"], "smollm2-135m");
    assert_eq!(vectors(&v).len(), 2);
    assert_eq!(vectors(&v)[0].len(), 576);
    let worker = v["nova"]["worker"].as_str().expect("worker");
    assert!(worker.starts_with("local"), "the gateway's own engine answered: {worker}");
}
