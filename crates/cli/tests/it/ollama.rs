//! Ollama's API end to end: the official `ollama` Python client against the real binary, a
//! gateway with two real workers on the real model. The client comes from
//! `NOVA_OLLAMA_PYTHON`, a venv's python that `scripts/test.sh` installs the pinned client in.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{spawn_gateway, swarm_worker, wait_ready};

const TOKEN: &str = "ollama-token";
const SECRET: &str = "ollama-secret-for-tests";
const WORKERS: [&str; 2] = ["olla-a", "olla-b"];

/// Lists, shows, chats whole and streamed (with nova's routing in `options`), and checks the
/// client's errors; prints what it saw as one JSON object.
const SCRIPT: &str = r##"
import json, sys, ollama
url, token = sys.argv[1], sys.argv[2]
client = ollama.Client(host=url, headers={"Authorization": "Bearer " + token}, timeout=120)
out = {}

listed = client.list()
out["listed"] = [m.model for m in listed.models]
smol = next(m for m in listed.models if m.model == "smollm2-135m:latest")
out["details"] = [smol.details.family, smol.details.parameter_size, smol.details.quantization_level, int(smol.size)]
out["running"] = [m.model for m in client.ps().models]
out["capabilities"] = client.show("smollm2-135m:latest").capabilities

question = [{"role": "user", "content": "What is the capital of France?"}]
r = client.chat(model="smollm2-135m", messages=question, options={"temperature": 0, "num_predict": 48})
out["chat"] = {"content": r.message.content, "role": r.message.role, "done": r.done,
               "done_reason": r.done_reason, "eval_count": r.eval_count,
               "prompt_eval_count": r.prompt_eval_count, "total_duration": r.total_duration}

parts, final = [], None
for part in client.chat(model="smollm2-135m:latest", messages=question, stream=True,
                        options={"temperature": 0, "num_predict": 48, "strategy": "race", "fanout": 2}):
    if part.done:
        final = part
    else:
        parts.append(part.message.content)
out["stream"] = {"parts": len(parts), "content": "".join(parts), "done_reason": final.done_reason,
                 "eval_count": final.eval_count}

def status_of(call):
    try:
        call()
    except ollama.ResponseError as e:
        return [e.status_code, e.error]
    return None

out["unknown_model"] = status_of(lambda: client.chat(model="llama3", messages=question))
# Structured output the way Ollama's docs show it: a Pydantic model's schema as `format`.
import pydantic
class Country(pydantic.BaseModel):
    name: str
    capital: str
r = client.chat(model="smollm2-135m", messages=[{"role": "user", "content": "Tell me about France."}],
                format=Country.model_json_schema(), options={"temperature": 0, "num_predict": 96})
out["format_schema"] = Country.model_validate_json(r.message.content).model_dump()
r = client.generate(model="smollm2-135m", prompt="A person as JSON:", format="json",
                    options={"temperature": 0, "num_predict": 200})
out["format_json"] = json.loads(r.response)
# A schema llama.cpp cannot enforce: the workers refuse it, and the client gets a 400.
out["format_bad"] = status_of(lambda: client.chat(model="smollm2-135m", messages=question,
                                                  format={"$ref": "#/$defs/missing"}))
wrong = ollama.Client(host=url, headers={"Authorization": "Bearer not-the-token"})
out["wrong_token"] = status_of(lambda: wrong.list())
print(json.dumps(out))
"##;

#[tokio::test]
async fn the_official_ollama_client_lists_chats_and_streams_through_two_workers() {
    let Some(python) = crate::client_python("NOVA_OLLAMA_PYTHON") else { return };
    let (_gateway, url, join) = spawn_gateway(TOKEN, SECRET, &[]);
    let _workers: Vec<_> = WORKERS.iter().map(|n| swarm_worker(&join, SECRET, n, &[])).collect();
    wait_ready(&url, TOKEN, 2).await;

    let out = crate::run_python(python, SCRIPT, vec![url.clone(), TOKEN.into()]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));

    assert_eq!(v["listed"], json!(["nova:latest", "smollm2-135m:latest"]), "{v}");
    assert_eq!(v["details"], json!(["llama", "135M", "Q4_1", 98_362_432]), "{v}");
    assert_eq!(v["running"], json!(["smollm2-135m:latest"]), "{v}");
    assert_eq!(v["capabilities"], json!(["completion"]), "{v}");

    let chat = &v["chat"];
    assert!(chat["content"].as_str().is_some_and(|c| c.contains("Paris")), "{v}");
    assert_eq!((chat["role"].clone(), chat["done"].clone()), (json!("assistant"), json!(true)));
    assert!(chat["done_reason"] == "stop" || chat["done_reason"] == "length", "{v}");
    for count in ["eval_count", "prompt_eval_count", "total_duration"] {
        assert!(chat[count].as_u64().is_some_and(|n| n > 0), "{count}: {v}");
    }

    let stream = &v["stream"];
    assert!(stream["parts"].as_u64().is_some_and(|n| n > 2), "expected several parts: {v}");
    assert!(stream["content"].as_str().is_some_and(|c| c.contains("Paris")), "{v}");
    assert!(stream["eval_count"].as_u64().is_some_and(|n| n > 0), "{v}");

    let (unknown, format) = (&v["unknown_model"], &v["format_bad"]);
    assert_eq!(unknown[0], 404, "{v}");
    assert!(unknown[1].as_str().is_some_and(|e| e.contains("not found")), "{v}");
    assert_eq!(format[0], 400, "{v}");
    assert!(format[1].as_str().is_some_and(|e| e.contains("JSON schema")), "{v}");
    // The answers parsed (in the script, into the Pydantic model), whatever they say.
    assert!(v["format_schema"]["capital"].is_string(), "{v}");
    assert!(v["format_json"].is_object(), "{v}");
    assert_eq!(v["wrong_token"], json!([401, "wrong bearer token"]), "{v}");

    // The routing the client asked for in `options` reached the swarm: both workers raced.
    let r = reqwest::Client::new()
        .post(format!("{url}/api/chat"))
        .bearer_auth(TOKEN)
        .json(&json!({
            "model": "smollm2-135m", "stream": false,
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "options": {"temperature": 0, "num_predict": 16, "strategy": "race", "fanout": 2},
        }))
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("chat");
    assert_eq!(r.status(), 200);
    let whole: Value = r.json().await.expect("json");
    assert_eq!(whole["nova"]["strategy"], "race", "{whole}");
    let asked = whole["nova"]["attempts"].as_array().map_or(0, Vec::len);
    assert_eq!(asked, 2, "{whole}");
}
