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
    check(&state, &req)?;
    Ok(next.run(req).await)
}

/// [`require_token`] for the Ollama routes, whose clients read errors in Ollama's shape.
pub(crate) async fn require_token_ollama(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, crate::ollama::OllamaError> {
    check(&state, &req)?;
    Ok(next.run(req).await)
}

fn check(state: &AppState, req: &Request) -> Result<(), ApiError> {
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .ok_or(ApiError::Unauthorized("missing bearer token"))?;
    if digest(given) != state.token_digest {
        tracing::warn!("request with a wrong bearer token refused");
        return Err(ApiError::Unauthorized("wrong bearer token"));
    }
    Ok(())
}

/// The token of an `Authorization` value in the `Bearer` scheme. Schemes are case-insensitive
/// (RFC 7235 §2.1) and clients differ in the whitespace they put around the token.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_scheme_is_case_insensitive_and_spaces_are_forgiven() {
        for value in ["Bearer t0k", "bearer t0k", "BEARER t0k", "BeArEr   t0k  ", "Bearer\tt0k"] {
            assert_eq!(bearer_token(value), Some("t0k"), "{value:?}");
        }
        for value in ["Basic t0k", "Bearer", "Bearer   ", "Bearert0k", "t0k", ""] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }
}
