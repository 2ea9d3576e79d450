//! `GET /v1/models`.

use axum::{extract::State, Json};
use serde_json::{json, Value};

use crate::AppState;

/// Every model in the swarm, plus `nova` ("any model").
pub(crate) async fn handle(State(state): State<AppState>) -> Json<Value> {
    let mut ids = vec!["nova".to_string()];
    ids.extend(state.inference.models());
    let data: Vec<Value> = ids
        .into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "nova-swarm"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}
