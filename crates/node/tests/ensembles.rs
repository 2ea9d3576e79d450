//! Vote, council and auto over scripted engines: who answers, what is picked, and every
//! failover path (a failed sample, a member lost in stage 1, a chairman failing before or
//! during its synthesis).

use nova_engine::{EngineError, Script};
use nova_node::Gateway;
use serde_json::{json, Value};

mod common;
use common::{app, call, engine, gateway, local, submit, TOKEN};

const QUESTION: &str = "What is the capital of France?";
/// Words only the ranking prompt has.
const RANK_KEY: &str = "Rank the answers";
/// Words only the synthesis prompt has.
const SYNTH_KEY: &str = "write the single best final answer";

/// A member that answers `answer`, ranks with `ranking` and synthesises with `synth`.
fn member(answer: &str, ranking: &str, synth: Script) -> Script {
    Script::Keyed(vec![
        (RANK_KEY.into(), Script::Fixed(ranking.into())),
        (SYNTH_KEY.into(), synth),
        (String::new(), Script::Fixed(answer.into())),
    ])
}

fn add(g: &Gateway, id: &str, script: Script, ms: u64) {
    g.add_worker(local(id, engine("m", script, ms), 10.0));
}

fn outcomes(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .expect("attempts")
        .iter()
        .map(|a| {
            (a["worker"].as_str().unwrap_or("").into(), a["outcome"].as_str().unwrap_or("").into())
        })
        .collect()
}

fn stage<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["trace"]["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no {name} stage: {v}"))
}

fn gone() -> EngineError {
    EngineError::Unavailable("device went away".into())
}

#[tokio::test]
async fn vote_returns_the_majority_claim_and_reports_agreement() {
    let g = gateway().await;
    add(&g, "a", Script::Fixed("Paris.".into()), 1);
    add(&g, "b", Script::Fixed("Lyon is the capital".into()), 1);
    add(&g, "c", Script::Fixed("The capital of France is Paris.".into()), 1);
    let (status, v) =
        submit(&app(&g), json!({"prompt": QUESTION, "strategy": "vote", "fanout": 3})).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["text"].as_str().unwrap_or("").contains("Paris"), "{v}");
    assert_eq!(v["trace"]["strategy"], "vote");
    assert_eq!(v["trace"]["vote"]["claim"], "paris");
    assert_eq!(v["trace"]["vote"]["answers"], 3);
    assert_eq!(v["trace"]["vote"]["distinct"], 2);
    let agreement = v["trace"]["vote"]["agreement"].as_f64().expect("agreement");
    assert!((agreement - 2.0 / 3.0).abs() < 1e-9, "{v}");
    let claims: Vec<&str> = v["trace"]["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .filter_map(|a| a["claim"].as_str())
        .collect();
    assert_eq!(claims.len(), 3, "{v}");
}

#[tokio::test]
async fn vote_asks_workers_for_more_samples_than_there_are_workers() {
    let g = gateway().await;
    add(&g, "a", Script::Fixed("42".into()), 1);
    add(&g, "b", Script::Fixed("41".into()), 1);
    let (status, v) =
        submit(&app(&g), json!({"prompt": "What is 6 x 7?", "strategy": "vote", "fanout": 5}))
            .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["trace"]["vote"]["answers"], 5, "{v}");
    let o = outcomes(&v["trace"]["attempts"]);
    assert_eq!(o.len(), 5, "{o:?}");
    assert!(o.iter().filter(|(w, _)| w == "a").count() >= 2, "{o:?}");
    assert!(o.iter().filter(|(w, _)| w == "b").count() >= 2, "{o:?}");
}

#[tokio::test]
async fn a_failed_vote_sample_is_replaced_by_another_worker() {
    let g = gateway().await;
    add(&g, "bad", Script::Fail(gone()), 1);
    add(&g, "a", Script::Fixed("Paris".into()), 1);
    add(&g, "b", Script::Fixed("Paris".into()), 1);
    let (status, v) =
        submit(&app(&g), json!({"prompt": QUESTION, "strategy": "vote", "fanout": 3})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["trace"]["vote"]["answers"], 3, "{v}");
    assert_eq!(v["trace"]["vote"]["agreement"], 1.0, "{v}");
    let o = outcomes(&v["trace"]["attempts"]);
    assert!(o.iter().any(|(w, k)| w == "bad" && k == "unavailable"), "{o:?}");
}

#[tokio::test]
async fn a_council_answers_ranks_and_synthesises_with_every_stage_in_the_trace() {
    let g = gateway().await;
    // Each member rates the first answer it is shown best; the chairman is the fastest.
    add(&g, "a", member("Paris", "A, B", Script::Fixed("Paris, says the council.".into())), 1);
    add(&g, "b", member("The capital is Paris", "A, B", Script::Fixed("b's synthesis".into())), 5);
    add(&g, "c", member("Lyon", "B, A", Script::Fixed("c's synthesis".into())), 10);
    let body = json!({"prompt": QUESTION, "strategy": "council", "fanout": 3, "debug": true});
    let (status, v) = submit(&app(&g), body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["text"], "Paris, says the council.");
    assert_eq!(v["trace"]["strategy"], "council");
    assert_eq!(v["trace"]["winner"], "a");
    let names: Vec<&str> = v["trace"]["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["answer", "rank", "synthesize"]);
    let answer = stage(&v, "answer");
    let labels: Vec<&str> = answer["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .filter_map(|a| a["role"].as_str())
        .collect();
    assert_eq!(labels, ["A", "B", "C"], "{answer}");
    let rank = stage(&v, "rank");
    assert_eq!(rank["attempts"].as_array().map(Vec::len), Some(3), "{rank}");
    assert_eq!(rank["scores"].as_array().map(Vec::len), Some(3), "{rank}");
    assert!(rank["note"].as_str().unwrap_or("").contains("3 of 3 members ranked"), "{rank}");
    // No ranker saw its own answer: every ranking prompt held two answers.
    let synth = stage(&v, "synthesize");
    assert_eq!(outcomes(&synth["attempts"]), [("a".to_string(), "won".to_string())]);
    assert_eq!(synth["attempts"][0]["role"], "chairman");
}

#[tokio::test]
async fn a_member_lost_in_stage_one_leaves_a_council_of_two_that_skips_ranking() {
    let g = gateway().await;
    add(&g, "a", member("Paris", "A", Script::Fixed("Paris.".into())), 1);
    add(&g, "b", member("Paris!", "A", Script::Fixed("b's synthesis".into())), 5);
    add(&g, "dead", Script::Fail(gone()), 1);
    let (status, v) =
        submit(&app(&g), json!({"prompt": QUESTION, "strategy": "council", "fanout": 3})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["text"], "Paris.");
    assert!(stage(&v, "answer")["note"].as_str().unwrap_or("").contains("dropped"), "{v}");
    let rank = stage(&v, "rank");
    assert!(rank["note"].as_str().unwrap_or("").starts_with("skipped: 2 answers"), "{rank}");
    assert_eq!(rank["attempts"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn a_council_down_to_one_answer_returns_it() {
    let g = gateway().await;
    add(&g, "a", member("Paris", "A", Script::Fixed("unused".into())), 1);
    add(&g, "dead1", Script::Fail(gone()), 1);
    add(&g, "dead2", Script::Fail(gone()), 1);
    let (status, v) =
        submit(&app(&g), json!({"prompt": QUESTION, "strategy": "council", "fanout": 3})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["text"], "Paris");
    assert!(stage(&v, "synthesize")["note"].as_str().unwrap_or("").contains("one answer"), "{v}");
}

#[tokio::test]
async fn a_failing_chairman_hands_the_synthesis_to_the_next_member() {
    let g = gateway().await;
    add(&g, "a", member("Paris", "A, B", Script::Fail(gone())), 1);
    add(&g, "b", member("Paris", "A, B", Script::Fixed("b wrote it".into())), 5);
    add(&g, "c", member("Paris", "A, B", Script::Fixed("c wrote it".into())), 10);
    let (status, v) =
        submit(&app(&g), json!({"prompt": QUESTION, "strategy": "council", "fanout": 3})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["text"], "b wrote it");
    assert_eq!(v["trace"]["winner"], "b");
    let synth = stage(&v, "synthesize");
    assert_eq!(
        outcomes(&synth["attempts"]),
        [("a".to_string(), "unavailable".to_string()), ("b".to_string(), "won".to_string())]
    );
}

/// Named SSE events of a `/submit` stream: (event, data).
fn named_events(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut name = String::new();
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("event:") {
            name = n.trim().to_string();
        } else if let Some(d) = line.strip_prefix("data:") {
            out.push((name.clone(), serde_json::from_str(d.trim()).unwrap_or(Value::Null)));
        }
    }
    out
}

#[tokio::test]
async fn a_chairman_dying_mid_stream_is_continued_and_stages_stream_as_they_end() {
    let g = gateway().await;
    let text = "The council says Paris is the capital";
    let dies = Script::FailAfter { text: text.into(), after: 3, error: gone() };
    add(&g, "a", member("Paris", "A, B", dies), 1);
    add(&g, "b", member("Paris", "A, B", Script::Fixed(text.into())), 5);
    add(&g, "c", member("Lyon", "B, A", Script::Fixed(text.into())), 10);
    let body = json!({"prompt": QUESTION, "strategy": "council", "fanout": 3, "stream": true});
    let (status, _, raw) = call(&app(&g), "POST", "/submit", Some(TOKEN), Some(body)).await;
    assert_eq!(status, 200, "{raw}");
    let events = named_events(&raw);
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    let stages: Vec<&str> = events
        .iter()
        .filter(|(k, _)| k == "stage")
        .filter_map(|(_, v)| v["name"].as_str())
        .collect();
    assert_eq!(stages, ["answer", "rank", "synthesize"], "{kinds:?}");
    let started: Vec<&str> = events
        .iter()
        .filter(|(k, _)| k == "stage_started")
        .filter_map(|(_, v)| v["name"].as_str())
        .collect();
    assert_eq!(started, ["answer", "rank", "synthesize"], "{kinds:?}");
    assert_eq!(kinds.first(), Some(&"stage_started"), "the stream opens as stage 1 starts");
    // The two first stages arrive before any token; the answer streams, then ends with `done`.
    let first_token = kinds.iter().position(|k| *k == "token").expect("tokens");
    assert!(kinds[..first_token].iter().filter(|k| **k == "stage").count() == 2, "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"done"), "{kinds:?}");
    let streamed: String = events
        .iter()
        .filter(|(k, _)| k == "token")
        .filter_map(|(_, v)| v["text"].as_str())
        .collect();
    assert_eq!(streamed, text);
    let done = &events.last().expect("done").1;
    assert_eq!(done["text"], text);
    assert_eq!(done["trace"]["handovers"].as_array().map(Vec::len), Some(1), "{done}");
    assert_eq!(done["trace"]["handovers"][0]["from"], "a");
}

#[tokio::test]
async fn auto_answers_once_on_one_worker_and_votes_to_learn_on_several() {
    let g = gateway().await;
    add(&g, "a", Script::Fixed("Paris".into()), 1);
    let (status, v) = submit(&app(&g), json!({"prompt": QUESTION})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["trace"]["strategy"], "race");
    assert!(v["trace"]["auto"].as_str().unwrap_or("").contains("one eligible worker"), "{v}");
    add(&g, "b", Script::Fixed("Paris".into()), 1);
    add(&g, "c", Script::Fixed("Paris".into()), 1);
    let (status, v) = submit(&app(&g), json!({"prompt": QUESTION, "tags": ["geo"]})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["trace"]["strategy"], "vote");
    assert!(v["trace"]["auto"].as_str().unwrap_or("").contains("learning"), "{v}");
    // A fanout alone still means race, as it always has.
    let (_, v) = submit(&app(&g), json!({"prompt": QUESTION, "fanout": 2})).await;
    assert_eq!(v["trace"]["strategy"], "race");
    assert!(v["trace"]["auto"].is_null());
}

#[tokio::test]
async fn auto_stops_voting_where_samples_always_agree() {
    let g = gateway().await;
    for id in ["a", "b", "c"] {
        add(&g, id, Script::Fixed("Paris".into()), 1);
    }
    let app = app(&g);
    let mut strategies = Vec::new();
    for _ in 0..14 {
        let (status, v) = submit(&app, json!({"prompt": QUESTION, "tags": ["geo"]})).await;
        assert_eq!(status, 200, "{v}");
        strategies.push(v["trace"]["strategy"].as_str().unwrap_or("").to_string());
    }
    // 8 votes to learn, then single answers (the tenth decision re-measures).
    assert!(strategies[..8].iter().all(|s| s == "vote"), "{strategies:?}");
    assert_eq!(strategies[8], "race", "{strategies:?}");
    assert!(strategies[8..].iter().filter(|s| *s == "race").count() >= 5, "{strategies:?}");
}
