//! JSON answers: a response format enforced with llama.cpp's grammar sampling on SmolLM2.

use std::time::Instant;

use nova_engine::EngineError;
use nova_proto::{ErrorKind, ResponseFormat, SamplingParams};
use serde_json::Value;

use crate::{
    ask, chat, greedy,
    llama::{idle, smollm},
    serial,
};

fn schema(s: &str) -> Option<ResponseFormat> {
    Some(ResponseFormat::JsonSchema { schema: s.into() })
}

const PERSON: &str = r#"{"type":"object","properties":{"name":{"type":"string","maxLength":40},"age":{"type":"integer"},"pets":{"type":"array","items":{"enum":["cat","dog","fish"]},"maxItems":3}},"required":["name","age","pets"]}"#;

/// Checks `v` against [`PERSON`].
fn is_person(v: &Value) -> bool {
    v["name"].is_string()
        && v["name"].as_str().is_some_and(|n| n.chars().count() <= 40)
        && v["age"].is_i64()
        && v["pets"].as_array().is_some_and(|p| {
            p.len() <= 3 && p.iter().all(|x| matches!(x.as_str(), Some("cat" | "dog" | "fish")))
        })
}

#[tokio::test]
async fn json_mode_and_a_schema_make_every_answer_parse() -> Result<(), EngineError> {
    let _serial = serial().await;
    let e = smollm();
    idle(&e).await;
    let q = "Describe a person called Ann who is 31 and has a cat.";
    let free = ask(e.as_ref(), chat(q, greedy(96))).await?;
    let started = Instant::now();
    let json_mode = SamplingParams { format: Some(ResponseFormat::JsonObject), ..greedy(400) };
    let object = ask(e.as_ref(), chat("Give Ann's name and age as JSON.", json_mode)).await?;
    let object_s = started.elapsed().as_secs_f64();
    let v: Value = serde_json::from_str(&object)
        .unwrap_or_else(|err| panic!("JSON mode answered {object:?}: {err}"));
    assert!(v.is_object(), "{object}");
    let person =
        ask(e.as_ref(), chat(q, SamplingParams { format: schema(PERSON), ..greedy(96) })).await?;
    let v: Value = serde_json::from_str(&person).unwrap_or_else(|err| panic!("{person:?}: {err}"));
    assert!(is_person(&v), "{person}");
    // Sampled answers too: the grammar holds whatever the draw.
    for seed in 1..=4 {
        let p = SamplingParams {
            temperature: 1.0,
            seed: Some(seed),
            max_tokens: 96,
            format: schema(PERSON),
            ..SamplingParams::default()
        };
        let a = ask(e.as_ref(), chat(q, p)).await?;
        let v: Value = serde_json::from_str(&a).unwrap_or_else(|err| panic!("{a:?}: {err}"));
        assert!(is_person(&v), "seed {seed}: {a}");
    }
    eprintln!("free text: {free:?}\nJSON mode ({object_s:.2} s): {object}\nschema: {person}",);
    Ok(())
}

#[tokio::test]
async fn schemas_llama_cpp_cannot_enforce_are_refused_and_the_engine_goes_on(
) -> Result<(), EngineError> {
    let _serial = serial().await;
    let e = smollm();
    idle(&e).await;
    let refused = [
        r##"{"$ref":"#/$defs/missing"}"##,
        r#"{"type":"string","pattern":"^(a$"}"#,
        r#"{"type":"array","items":{"type":"integer"},"minItems":100000}"#,
    ];
    for s in refused {
        let p = SamplingParams { format: schema(s), ..greedy(16) };
        match ask(e.as_ref(), chat("Numbers?", p)).await {
            Err(EngineError::Rejected { kind: ErrorKind::InvalidRequest, message }) => {
                assert!(message.contains("schema"), "{s}: {message}");
            }
            other => panic!("{s}: {other:?}"),
        }
    }
    // A self-referencing schema is a grammar, not a loop: nested lists of lists.
    let nested = r##"{"$defs":{"l":{"type":"array","items":{"$ref":"#/$defs/l"},"maxItems":2}},"$ref":"#/$defs/l"}"##;
    let a = ask(
        e.as_ref(),
        chat("Nest some lists.", SamplingParams { format: schema(nested), ..greedy(48) }),
    )
    .await;
    match a {
        Ok(text) => assert!(text.starts_with('['), "{text}"),
        Err(err) => panic!("nested lists: {err}"),
    }
    let after = ask(e.as_ref(), chat("What is the capital of France?", greedy(24))).await?;
    assert!(after.contains("Paris"), "{after}");
    Ok(())
}
