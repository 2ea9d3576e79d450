//! `GET /bundle/latest` (the latest signed update bundle, as a download) and
//! `GET /bundle/latest.sig` (its signed manifest). The gateway serves files; the signature is
//! checked by whoever installs the bundle, against the release key they trust.

use std::path::PathBuf;

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use tokio::io::AsyncReadExt as _;

use crate::AppState;

/// A published bundle, as the API needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestBundle {
    /// The archive's file name, `nova-swarm-<version>.tgz`.
    pub file_name: String,
    /// Its version.
    pub version: String,
    /// Its size in bytes, as signed.
    pub size: u64,
    /// Where the archive is.
    pub archive: PathBuf,
    /// The signed manifest JSON, verbatim.
    pub manifest: String,
}

/// The port the bundle routes need: where the latest bundle is.
pub trait Bundles: Send + Sync + 'static {
    /// The latest published bundle, if any.
    fn latest(&self) -> Option<LatestBundle>;
}

fn not_found() -> Response {
    let body = serde_json::json!({"error": {
        "message": "no signed bundle is published on this gateway (put nova-swarm-<version>.tgz and its .sig in its bundle directory)",
        "type": "not_found_error",
        "code": "no_bundle",
    }});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

fn latest(state: &AppState) -> Option<LatestBundle> {
    state.bundles.as_ref().and_then(|b| b.latest())
}

pub(crate) async fn manifest(State(state): State<AppState>) -> Response {
    match latest(&state) {
        Some(b) => ([(header::CONTENT_TYPE, "application/json")], b.manifest).into_response(),
        None => not_found(),
    }
}

pub(crate) async fn archive(State(state): State<AppState>) -> Response {
    let Some(b) = latest(&state) else { return not_found() };
    let file = match tokio::fs::File::open(&b.archive).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(path = %b.archive.display(), error = %e, "cannot open the published bundle");
            return not_found();
        }
    };
    // Streamed in 64 KiB reads, never more than the signed size.
    let stream = futures_util::stream::unfold(file.take(b.size), |mut f| async move {
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let mut resp = Body::from_stream(stream).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/gzip"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", b.file_name)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&b.version) {
        headers.insert("x-nova-bundle-version", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::http::Request;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;

    struct Fixed(Option<LatestBundle>);
    impl Bundles for Fixed {
        fn latest(&self) -> Option<LatestBundle> {
            self.0.clone()
        }
    }

    struct NoInference;
    impl crate::Inference for NoInference {
        fn run(
            &self,
            _: crate::Job,
        ) -> futures_util::future::BoxFuture<'_, Result<crate::JobEvents, crate::InferError>>
        {
            Box::pin(async { Err(crate::InferError::Shutdown) })
        }
        fn models(&self) -> Vec<String> {
            vec![]
        }
        fn swarm(&self) -> nova_proto::SwarmView {
            nova_proto::SwarmView::default()
        }
        fn metrics(&self) -> String {
            String::new()
        }
    }

    async fn get(state: AppState, path: &str, token: Option<&str>) -> (StatusCode, Vec<u8>) {
        let mut req = Request::get(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = crate::router(state).oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        (status, resp.into_body().collect().await.unwrap().to_bytes().to_vec())
    }

    #[tokio::test]
    async fn serves_the_latest_bundle_behind_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("nova-swarm-0.2.0.tgz");
        std::fs::write(&archive, b"archive bytes and some trailing junk").unwrap();
        let b = LatestBundle {
            file_name: "nova-swarm-0.2.0.tgz".into(),
            version: "0.2.0".into(),
            size: 13,
            archive,
            manifest: "{\"version\":\"0.2.0\"}".into(),
        };
        let state = AppState::new(Arc::new(NoInference), "tok", nova_proto::Limits::default())
            .with_bundles(Arc::new(Fixed(Some(b))));
        assert_eq!(get(state.clone(), "/bundle/latest", None).await.0, StatusCode::UNAUTHORIZED);
        let (st, body) = get(state.clone(), "/bundle/latest", Some("tok")).await;
        assert_eq!((st, body.as_slice()), (StatusCode::OK, &b"archive bytes"[..]));
        let (st, body) = get(state, "/bundle/latest.sig", Some("tok")).await;
        assert_eq!((st, body.as_slice()), (StatusCode::OK, &b"{\"version\":\"0.2.0\"}"[..]));

        let none = AppState::new(Arc::new(NoInference), "tok", nova_proto::Limits::default());
        let (st, body) = get(none, "/bundle/latest", Some("tok")).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert!(String::from_utf8_lossy(&body).contains("no_bundle"));
    }
}
