//! The official `openai` Python client against a real gateway with two workers (issue 14,
//! item 8): the model list and one model, a chat whole and streamed, content as a list of text
//! parts, `n` choices, JSON answers (JSON mode, and a Pydantic model through the client's own
//! `parse`), legacy completions whole and streamed, and a clear 400 for what nova does not do
//! (tools, images).

use std::time::Duration;

const TOKEN: &str = "openai-token";
const SECRET: &str = "openai-secret";

const SCRIPT: &str = r#"
import sys, openai
client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key=sys.argv[2])
models = [m.id for m in client.models.list()]
assert "smollm2-135m" in models and "nova" in models, models
assert client.models.retrieve("smollm2-135m").id == "smollm2-135m"
try:
    client.models.retrieve("no-such-model")
    raise SystemExit("an unknown model was found")
except openai.NotFoundError as e:
    print("unknown model:", e.status_code)

parts = [{"type": "text", "text": "What is the capital"}, {"type": "text", "text": "of France?"}]
whole = client.chat.completions.create(
    model="smollm2-135m", temperature=0, max_tokens=32,
    messages=[{"role": "user", "content": parts}],
    extra_body={"nova": {"strategy": "race", "fanout": 2}},
)
print("whole:", whole.choices[0].message.content)
assert "Paris" in whole.choices[0].message.content

stream = client.chat.completions.create(
    model="nova", temperature=0, max_tokens=32, stream=True,
    messages=[{"role": "user", "content": "What is the capital of France?"}],
    extra_body={"nova": {"strategy": "race", "fanout": 2}},
)
chunks = [c.choices[0].delta.content or "" for c in stream if c.choices]
print("streamed:", len(chunks), "".join(chunks))
assert len(chunks) > 2 and "Paris" in "".join(chunks)

two = client.chat.completions.create(
    model="nova", temperature=0.9, seed=5, max_tokens=24, n=2,
    messages=[{"role": "user", "content": "Name a fruit."}],
    extra_body={"nova": {"strategy": "race", "fanout": 1}},
)
assert [c.index for c in two.choices] == [0, 1], two
print("n=2:", [c.message.content for c in two.choices])

# JSON mode: whatever the model says parses.
import json
obj = client.chat.completions.create(
    model="nova", temperature=0, max_tokens=200, response_format={"type": "json_object"},
    messages=[{"role": "user", "content": "Give the name and age of a person as JSON."}],
)
print("json mode:", obj.choices[0].message.content)
assert isinstance(json.loads(obj.choices[0].message.content), dict)

# A Pydantic model, as applications ask for structured output: the client sends a strict
# schema and parses the answer into the model; every sampled answer parses.
import pydantic
class City(pydantic.BaseModel):
    name: str
    country: str
    population: int
for seed in (1, 2, 3):
    parsed = client.chat.completions.parse(
        model="nova", temperature=0.8, seed=seed, max_tokens=120, response_format=City,
        messages=[{"role": "user", "content": "Describe Paris."}],
    )
    city = parsed.choices[0].message.parsed
    print("parsed:", seed, city)
    assert isinstance(city, City) and isinstance(city.population, int), parsed

legacy = client.completions.create(model="nova", prompt="1, 2, 3, 4,", max_tokens=6, temperature=0)
print("legacy:", repr(legacy.choices[0].text))
assert "5" in legacy.choices[0].text and legacy.object == "text_completion"
pieces = [c.choices[0].text for c in client.completions.create(
    model="nova", prompt="1, 2, 3, 4,", max_tokens=6, temperature=0, stream=True) if c.choices]
# Greedy, yet not always the same text: a worker decoding other sequences in the same batch
# computes the last bits differently, enough to flip a near tie.
print("legacy streamed:", repr("".join(pieces)))
assert len(pieces) > 1 and "5" in "".join(pieces), pieces

refused = {
    "tools": dict(tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}]),
    "image": dict(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]),
    "n = 9": dict(n=9),
}
for what, extra in refused.items():
    args = dict(model="nova", max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
    args.update(extra)
    try:
        client.chat.completions.create(**args)
        raise SystemExit(what + " was not refused")
    except openai.BadRequestError as e:
        print(what, "refused:", e.status_code, e.message)
print("OK")
"#;

#[tokio::test]
async fn the_official_openai_client_lists_chats_and_streams_through_two_workers() {
    let Some(python) = crate::client_python("NOVA_OPENAI_PYTHON") else { return };
    let (_g, url, join) = crate::spawn_gateway(TOKEN, SECRET, &[]);
    let _a = crate::swarm_worker(&join, SECRET, "oa-a", &[]);
    let _b = crate::swarm_worker(&join, SECRET, "oa-b", &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while crate::swarm_view(&url, TOKEN).await["workers"].as_array().map_or(0, Vec::len) < 2 {
        assert!(std::time::Instant::now() < deadline, "two workers never joined");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = crate::run_python(python, SCRIPT, vec![url.clone(), TOKEN.into()]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.trim_end().ends_with("OK"), "{stdout}");

    // Both workers were asked (fanout 2): each has attempts under its own id.
    let metrics = reqwest::Client::new()
        .get(format!("{url}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut workers: Vec<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("nova_attempts_total{worker=\""))
        .filter_map(|l| l.split('"').next())
        .collect();
    workers.dedup();
    workers.sort_unstable();
    workers.dedup();
    assert_eq!(workers.len(), 2, "attempts by worker: {metrics}");
}
