//! Bearer-token authentication.

use axum::{
    extract::{Request, State},
    http::header::AUTHORIZATION,
    middleware::Next,
    response::Response,
};
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Refuses requests without the right `Authorization: Bearer <token>`. Tokens are compared by
/// their sha256, so the comparison's timing says nothing about the token itself.
pub(crate) async fn require_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized("missing bearer token"))?;
    if digest(given.trim()) != state.token_digest {
        tracing::warn!("request with a wrong bearer token refused");
        return Err(ApiError::Unauthorized("wrong bearer token"));
    }
    Ok(next.run(req).await)
}
