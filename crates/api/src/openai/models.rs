//! `GET /v1/models` and `GET /v1/models/{id}`.

use axum::{
    extract::{Path, State},
    Json,
};
use serde_json::{json, Value};

use crate::{ApiError, AppState, InferError};

fn model(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "nova-swarm"})
}

/// One model: served by some node (or `nova`, "any model"), else 404 as OpenAI says it.
pub(crate) async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let served = state.inference.models();
    if id == "nova" || served.contains(&id) {
        return Ok(Json(model(&id)));
    }
    Err(InferError::UnknownModel {
        model: id.chars().take(256).collect(),
        available: std::iter::once("nova".to_owned()).chain(served).collect::<Vec<_>>().join(", "),
    }
    .into())
}

/// Every model in the swarm, plus `nova` ("any model").
pub(crate) async fn handle(State(state): State<AppState>) -> Json<Value> {
    let mut ids = vec!["nova".to_string()];
    ids.extend(state.inference.models());
    let data: Vec<Value> = ids.into_iter().map(|id| model(&id)).collect();
    Json(json!({"object": "list", "data": data}))
}
