//! JSON request bodies, whatever their `Content-Type`.
//!
//! axum's `Json` refuses a body not labelled `application/json`, but `curl -d '{…}'` (the
//! README's own examples) labels it `application/x-www-form-urlencoded`. Every body these
//! endpoints take is JSON, so the label carries no information and [`JsonBody`] ignores it.
//! Malformed JSON still gets a precise 400 (serde's message, the field path, line and column),
//! and a body over [`crate::MAX_BODY`] gets 413 before it is parsed.

use axum::{
    body::Bytes,
    extract::{rejection::JsonRejection, FromRequest, Request},
    http::StatusCode,
    Json,
};
use serde::de::DeserializeOwned;

use crate::ApiError;

/// A body parsed as JSON into `T`, regardless of its `Content-Type`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // `Bytes` honours the router's `DefaultBodyLimit`, so nothing larger is buffered.
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge
            } else {
                ApiError::BadRequest(format!("cannot read the request body: {}", e.body_text()))
            }
        })?;
        let Json(value) = Json::<T>::from_bytes(&bytes).map_err(bad_json)?;
        Ok(Self(value))
    }
}

/// Maps a JSON parse failure to an OpenAI-shaped 400 that keeps serde's detail; a tag list
/// the parser stopped reading (`nova_proto::deserialize_tags`) is `422 bad_tags`, as a
/// shorter over-long list is.
fn bad_json(e: JsonRejection) -> ApiError {
    let text = e.body_text();
    if text.contains(nova_proto::TOO_MANY_TAGS) {
        let limits = nova_proto::Limits::default();
        return nova_proto::ValidationError::BadTags {
            max: limits.max_tags,
            max_bytes: limits.max_tag_bytes,
            detail: format!("more than {} tags", nova_proto::MAX_TAGS_READ),
        }
        .into();
    }
    ApiError::BadRequest(format!("invalid request body: {text}"))
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, extract::DefaultBodyLimit, routing::post, Router};
    use http_body_util::BodyExt as _;
    use serde::Deserialize;
    use serde_json::Value;
    use tower::ServiceExt as _;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Ask {
        prompt: String,
    }

    fn app() -> Router {
        Router::new()
            .route("/", post(|JsonBody(a): JsonBody<Ask>| async move { a.prompt }))
            .layer(DefaultBodyLimit::max(64))
    }

    async fn post_body(content_type: Option<&str>, body: &str) -> (StatusCode, String) {
        let mut req = axum::http::Request::post("/");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = app()
            .oneshot(req.body(Body::from(body.to_string())).expect("request"))
            .await
            .expect("infallible");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    fn message(body: &str) -> String {
        let v: Value = serde_json::from_str(body).expect("an OpenAI-shaped error");
        v["error"]["message"].as_str().expect("message").to_string()
    }

    #[tokio::test]
    async fn json_is_accepted_under_any_content_type() {
        for ct in [
            Some("application/json"),
            // What `curl -d` sends.
            Some("application/x-www-form-urlencoded"),
            Some("text/plain"),
            None,
        ] {
            let (status, body) = post_body(ct, r#"{"prompt":"Hi"}"#).await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, "Hi"), "{ct:?}");
        }
    }

    #[tokio::test]
    async fn malformed_json_gets_a_precise_400() {
        let (status, body) = post_body(None, "{\"prompt\":\n\"Hi\"").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let msg = message(&body);
        assert!(msg.starts_with("invalid request body:"), "{msg}");
        assert!(msg.contains("EOF") && msg.contains("line 2 column 4"), "{msg}");

        let (status, body) = post_body(Some("application/json"), r#"{"prompt":1}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let msg = message(&body);
        assert!(msg.contains("prompt") && msg.contains("invalid type"), "{msg}");

        let (status, body) = post_body(None, r#"{"prompt":"a","extra":1}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(message(&body).contains("unknown field `extra`"), "{body}");

        let (status, _) = post_body(None, r#"{"prompt":"a"} trailing"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = post_body(None, "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_gets_413() {
        let big = format!(r#"{{"prompt":"{}"}}"#, "x".repeat(100));
        let (status, body) = post_body(None, &big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(body.contains("body_too_large"), "{body}");
    }
}
