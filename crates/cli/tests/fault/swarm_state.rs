//! Reading `/v1/swarm` without depending on more of its shape than the harness needs (the view
//! is being retyped): each worker entry has a `state` and a name, either at `worker.name` or at
//! `name`.

use serde_json::Value;

fn entries(v: &Value) -> impl Iterator<Item = &Value> {
    v["workers"].as_array().into_iter().flatten()
}

fn name(w: &Value) -> Option<&str> {
    w["worker"]["name"].as_str().or_else(|| w["name"].as_str())
}

/// Names of the workers in state `ready`.
pub(crate) fn ready_names(v: &Value) -> Vec<String> {
    entries(v).filter(|w| w["state"] == "ready").filter_map(name).map(String::from).collect()
}

/// How many worker entries the view lists, whatever their state.
pub(crate) fn listed(v: &Value) -> usize {
    entries(v).count()
}

/// The reported queue depth of worker `n` (0 when unknown).
pub(crate) fn queue_depth(v: &Value, n: &str) -> u64 {
    entries(v)
        .find(|w| name(w) == Some(n))
        .and_then(|w| w["status"]["queue_depth"].as_u64().or_else(|| w["queue_depth"].as_u64()))
        .unwrap_or(0)
}
