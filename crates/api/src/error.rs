//! One error type for every handler, rendered in OpenAI's shape:
//! `{"error": {"message", "type", "code"}}`.

use axum::{
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use nova_proto::ValidationError;
use serde_json::json;

use crate::InferError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Missing or wrong bearer token (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The body is not the JSON this endpoint takes (400).
    #[error("{0}")]
    BadRequest(String),
    /// The request is well-formed but a value is out of bounds (422).
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The body is larger than [`crate::MAX_BODY`] (413).
    #[error("the request body exceeds {} bytes", crate::MAX_BODY)]
    TooLarge,
    /// No such route (404).
    #[error("no such endpoint")]
    NotFound,
    /// The swarm could not serve it.
    #[error(transparent)]
    Infer(#[from] InferError),
}

impl ApiError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Infer(e) => match e {
                InferError::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
                InferError::UnknownModel { .. } => StatusCode::NOT_FOUND,
                InferError::NoCapacity { .. } => StatusCode::SERVICE_UNAVAILABLE,
                InferError::Rejected { .. } => StatusCode::BAD_REQUEST,
                InferError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                InferError::Failed { .. } => StatusCode::BAD_GATEWAY,
                InferError::Shutdown => StatusCode::SERVICE_UNAVAILABLE,
            },
        }
    }

    /// OpenAI's `type` and nova's stable `code`.
    pub fn type_and_code(&self) -> (&'static str, &'static str) {
        match self {
            Self::Unauthorized(_) => ("authentication_error", "invalid_api_key"),
            Self::BadRequest(_) => ("invalid_request_error", "invalid_json"),
            Self::TooLarge => ("invalid_request_error", "body_too_large"),
            Self::Validation(e) => ("invalid_request_error", e.kind()),
            Self::NotFound => ("invalid_request_error", "not_found"),
            Self::Infer(e) => (
                match e {
                    InferError::Overloaded { .. } => "rate_limit_error",
                    InferError::UnknownModel { .. } | InferError::Rejected { .. } => {
                        "invalid_request_error"
                    }
                    _ => "server_error",
                },
                e.kind(),
            ),
        }
    }

    /// The JSON body, also used as an SSE error event.
    pub fn body(&self) -> serde_json::Value {
        let (ty, code) = self.type_and_code();
        json!({"error": {"message": self.to_string(), "type": ty, "code": code}})
    }

    /// Adds the headers this error calls for, whatever shape its body takes: when to retry,
    /// and which scheme to authenticate with.
    pub(crate) fn add_headers(&self, headers: &mut HeaderMap) {
        if let Self::Infer(
            InferError::Overloaded { retry_after_s } | InferError::NoCapacity { retry_after_s, .. },
        ) = self
        {
            if let Ok(v) = HeaderValue::from_str(&retry_after_s.to_string()) {
                headers.insert(header::RETRY_AFTER, v);
            }
        }
        if matches!(self, Self::Unauthorized(_)) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status(), Json(self.body())).into_response();
        self.add_headers(resp.headers_mut());
        resp
    }
}
