//! `GET /v1/strategies`: the routing strategies this gateway runs, for clients that offer a
//! choice (the dashboard builds its list from it). Derived from [`Strategy::ALL`] and
//! [`Strategy::description`], so a new strategy shows up everywhere without another list to
//! keep in step.

use axum::Json;
use nova_proto::Strategy;
use serde::Serialize;

/// The response: every strategy in the order a UI lists them, and the one a request without
/// `strategy` (or `fanout`) gets.
#[derive(Debug, Serialize)]
pub(crate) struct Strategies {
    object: &'static str,
    default: Strategy,
    data: Vec<Entry>,
}

#[derive(Debug, Serialize)]
struct Entry {
    id: Strategy,
    description: &'static str,
}

/// A fixed list of a handful of entries: nothing from the request shapes it.
pub(crate) async fn handle() -> Json<Strategies> {
    Json(list())
}

fn list() -> Strategies {
    Strategies {
        object: "list",
        default: crate::strategy_or_default(None, None),
        data: Strategy::ALL
            .into_iter()
            .map(|s| Entry { id: s, description: s.description() })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::{
        body::Body,
        http::{Request, StatusCode},
    };
    use futures_util::future::BoxFuture;
    use http_body_util::BodyExt as _;
    use nova_proto::{Limits, Strategy, SwarmView};
    use serde_json::Value;
    use tower::ServiceExt as _;

    use crate::{router, AppState, InferError, Inference, Job, JobEvents};

    /// A swarm with nothing in it: the list does not depend on the swarm.
    struct NoSwarm;

    impl Inference for NoSwarm {
        fn run(&self, _job: Job) -> BoxFuture<'_, Result<JobEvents, InferError>> {
            Box::pin(async { Err(InferError::Shutdown) })
        }
        fn models(&self) -> Vec<String> {
            Vec::new()
        }
        fn swarm(&self) -> SwarmView {
            SwarmView::default()
        }
        fn metrics(&self) -> String {
            String::new()
        }
    }

    async fn get(token: Option<&str>) -> (StatusCode, String) {
        let app = router(AppState::new(Arc::new(NoSwarm), "tok", Limits::default()));
        let mut req = Request::get("/v1/strategies");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp =
            app.oneshot(req.body(Body::empty()).expect("request")).await.expect("infallible");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8(body.to_vec()).expect("utf-8"))
    }

    #[tokio::test]
    async fn lists_every_strategy_with_its_description_and_the_default() -> Result<(), String> {
        let (status, body) = get(Some("tok")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        assert_eq!(v["object"], "list");
        assert_eq!(v["default"], Strategy::default().as_str());
        let data = v["data"].as_array().ok_or("no data")?;
        assert_eq!(data.len(), Strategy::ALL.len(), "{v}");
        for (entry, s) in data.iter().zip(Strategy::ALL) {
            assert_eq!(entry["id"], s.as_str(), "{v}");
            assert_eq!(entry["description"], s.description(), "{v}");
            // Each id is one a chat request accepts back.
            let back: Strategy =
                serde_json::from_value(entry["id"].clone()).map_err(|e| e.to_string())?;
            assert_eq!(back, s);
        }
        // A small, fixed answer: it cannot grow with anything a client sends.
        assert!(body.len() < 1024, "{} bytes", body.len());
        Ok(())
    }

    #[tokio::test]
    async fn needs_the_token() {
        for bad in [None, Some("wrong")] {
            let (status, body) = get(bad).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
            assert!(!body.contains("council"), "{body}");
        }
    }
}
