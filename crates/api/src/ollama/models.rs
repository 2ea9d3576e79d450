//! `GET /api/tags`, `POST /api/show`, `GET /api/ps`, `GET /api/version`: the swarm's models as
//! Ollama describes its own. What a catalog model is (size, digest, family, parameters,
//! quantization) comes from nova's catalog; a model a device added under its own name is
//! known by name only.

use axum::{extract::State, Json};
use nova_model::catalog;
use nova_proto::{SamplingParams, WorkerState};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{listed_name, model_name, rfc3339, started, OllamaError, ANY_MODEL};
use crate::{body::JsonBody, ApiError, AppState, InferError};

/// Every model some live worker serves, and `nova` (any model), as in `GET /v1/models`.
pub(super) async fn tags(State(state): State<AppState>) -> Json<Value> {
    let mut models = vec![entry(ANY_MODEL)];
    models.extend(state.inference.models().iter().map(|m| entry(m)));
    Json(json!({ "models": models }))
}

/// The models workers have loaded, each with the devices that hold it (`nova.workers`): in a
/// swarm every served model is loaded, on the devices that serve it.
pub(super) async fn ps(State(state): State<AppState>) -> Json<Value> {
    let view = state.inference.swarm();
    let models: Vec<Value> = view
        .models
        .iter()
        .map(|m| {
            let workers: Vec<&str> = view
                .workers
                .iter()
                .filter(|w| !matches!(w.state, WorkerState::Gone | WorkerState::Stale))
                .filter(|w| w.worker.models.contains(m))
                .map(|w| w.worker.name.as_str())
                .collect();
            let mut v = entry(m);
            // Workers run on CPUs.
            v["size_vram"] = json!(0);
            v["nova"] = json!({ "workers": workers });
            v
        })
        .collect();
    Json(json!({ "models": models }))
}

pub(super) async fn version() -> Json<Value> {
    // nova's own version: claiming one of Ollama's would promise its features.
    Json(json!({ "version": env!("CARGO_PKG_VERSION") }))
}

/// `model`, or the older `name`. `verbose` asks for tokenizer data nova does not send.
#[derive(Debug, Deserialize)]
pub(super) struct ShowRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    name: String,
}

pub(super) async fn show(
    State(state): State<AppState>,
    body: Result<JsonBody<ShowRequest>, ApiError>,
) -> Result<Json<Value>, OllamaError> {
    let JsonBody(req) = body?;
    let asked = if req.model.is_empty() { req.name } else { req.model };
    let model = model_name(&asked)?;
    let served = state.inference.models();
    if let Some(m) = &model {
        if !served.contains(m) {
            let available = served.join(", ");
            return Err(InferError::UnknownModel { model: m.clone(), available }.into());
        }
    }
    let name = model.as_deref().unwrap_or(ANY_MODEL);
    let d = SamplingParams::default();
    let parameters = format!(
        "temperature {}\ntop_p {}\ntop_k {}\nrepeat_penalty {}\nnum_predict {}",
        d.temperature, d.top_p, d.top_k, d.repeat_penalty, d.max_tokens
    );
    let about = match &model {
        Some(m) => format!("# nova serves {m} from the devices of its swarm.\nFROM {m}\n"),
        None => format!(
            "# nova answers with any model its swarm serves: {}.\n",
            if served.is_empty() { "none now".to_string() } else { served.join(", ") }
        ),
    };
    let mut info = json!({});
    if let Some(c) = catalog::find(name) {
        info["general.architecture"] = json!(c.family);
    }
    Ok(Json(json!({
        "modelfile": about + &parameters.lines().map(|l| format!("PARAMETER {l}\n")).collect::<String>(),
        "parameters": parameters,
        // Each worker renders prompts with the template inside its model file.
        "template": "",
        "details": details(name),
        "model_info": info,
        "capabilities": ["completion"],
        "modified_at": rfc3339(started()),
    })))
}

/// A model as `/api/tags` lists it.
fn entry(model: &str) -> Value {
    let c = catalog::find(model);
    json!({
        "name": listed_name(model),
        "model": listed_name(model),
        "modified_at": rfc3339(started()),
        "size": c.map_or(0, |c| c.size),
        "digest": c.map_or("", |c| c.sha256),
        "details": details(model),
    })
}

fn details(model: &str) -> Value {
    let c = catalog::find(model);
    json!({
        "parent_model": "",
        "format": if model == ANY_MODEL { "" } else { "gguf" },
        "family": c.map_or("", |c| c.family),
        "families": c.map(|c| vec![c.family]),
        "parameter_size": c.map_or("", |c| c.parameter_size),
        "quantization_level": c.map_or("", |c| c.quantization),
    })
}
