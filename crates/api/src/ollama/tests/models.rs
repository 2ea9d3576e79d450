//! `/api/tags`, `/api/show`, `/api/ps`, `/api/version`.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::{app, get, post};

fn named<'a>(models: &'a Value, name: &str) -> &'a Value {
    let list = models["models"].as_array().expect("a models list");
    list.iter().find(|m| m["name"] == name).unwrap_or_else(|| panic!("no {name} in {models}"))
}

#[tokio::test]
async fn tags_lists_every_served_model_with_the_catalogs_facts() {
    let (app, _) = app();
    let a = get(&app, "/api/tags").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let v = a.json();
    let names: Vec<&str> = v["models"]
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "nova:latest",
            "smollm2-135m:latest",
            "my-finetune:latest",
            "broken:latest",
            "busy:latest"
        ]
    );
    let smol = named(&v, "smollm2-135m:latest");
    assert_eq!(smol["model"], "smollm2-135m:latest");
    assert_eq!(smol["size"], 98_362_432);
    assert_eq!(smol["digest"].as_str().map(str::len), Some(64));
    assert_eq!(
        smol["details"],
        json!({"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
               "parameter_size": "135M", "quantization_level": "Q4_1"})
    );
    let t = smol["modified_at"].as_str().expect("a time");
    assert!(t.len() == 24 && t.ends_with('Z') && t.starts_with("20"), "{t}");
    // A model a device added under its own name is known by name only.
    let own = named(&v, "my-finetune:latest");
    assert_eq!((own["size"].clone(), own["digest"].clone()), (json!(0), json!("")));
    assert_eq!(own["details"]["family"], "");
}

#[tokio::test]
async fn show_describes_a_served_model_and_404s_others() {
    let (app, _) = app();
    for body in [
        json!({"model": "smollm2-135m"}),
        json!({"model": "smollm2-135m:latest", "verbose": true}),
        json!({"name": "smollm2-135m"}),
    ] {
        let a = post(&app, "/api/show", &body).await;
        assert_eq!(a.status, StatusCode::OK, "{body}: {}", a.text);
        let v = a.json();
        assert_eq!(v["details"]["quantization_level"], "Q4_1", "{v}");
        assert_eq!(v["model_info"]["general.architecture"], "llama");
        assert_eq!(v["capabilities"], json!(["completion"]));
        assert!(v["parameters"].as_str().is_some_and(|p| p.contains("temperature 0.7")), "{v}");
        assert!(v["modelfile"].as_str().is_some_and(|m| m.contains("FROM smollm2-135m")), "{v}");
        assert_eq!(v["template"], "");
    }
    let v = post(&app, "/api/show", &json!({"model": "nova"})).await.json();
    assert!(v["modelfile"].as_str().is_some_and(|m| m.contains("smollm2-135m")), "{v}");
    assert!(v["model_info"].is_object(), "the official client requires the key");

    let a = post(&app, "/api/show", &json!({"model": "llama3"})).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.error().starts_with("model \"llama3\" not found"), "{}", a.text);
    let a = post(&app, "/api/show", &json!({})).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.error().contains("model is required"), "{}", a.text);
}

#[tokio::test]
async fn ps_lists_the_loaded_models_with_the_devices_that_hold_them() {
    let (app, _) = app();
    let v = get(&app, "/api/ps").await.json();
    let models = v["models"].as_array().expect("list");
    assert_eq!(models.len(), 2, "{v}");
    let smol = named(&v, "smollm2-135m:latest");
    // The departed worker is not listed.
    assert_eq!(smol["nova"]["workers"], json!(["phone", "laptop"]));
    assert_eq!(smol["size_vram"], 0);
    assert_eq!(smol["details"]["family"], "llama");
    assert_eq!(named(&v, "my-finetune:latest")["nova"]["workers"], json!(["laptop"]));
}

#[tokio::test]
async fn version_is_novas_own() {
    let (app, _) = app();
    let a = get(&app, "/api/version").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json(), json!({"version": env!("CARGO_PKG_VERSION")}));
}

#[test]
fn times_are_rfc3339_utc() {
    use std::time::{Duration, UNIX_EPOCH};
    let at = |ms: u64| super::super::rfc3339(UNIX_EPOCH + Duration::from_millis(ms));
    assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(at(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(at(1_796_083_199_999), "2026-11-30T23:59:59.999Z");
    assert_eq!(at(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
}
