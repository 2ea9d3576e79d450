//! The web dashboard: a single page whose assets are compiled into the binary, and the live
//! swarm feed it reads.
//!
//! The page itself (`/`, `/assets/*`) is served without a token and holds no data: it asks for
//! the bearer token and then reads everything through the authenticated API, so a browser
//! without the token sees a login prompt and nothing else. Every page response carries a
//! Content-Security-Policy that allows only this origin (no inline script, no CDN), so the
//! dashboard works offline and a stray string in a model's answer cannot run as code.
//!
//! `GET /v1/swarm/events` (authenticated) is the live view as server-sent events. It is chosen
//! over polling `/v1/swarm` from the page because the issue asks for a live push, one long
//! response is cheaper for a phone than a request a second, and the gateway can notice a change
//! (a join, a departure, a node turning stale) within a quarter second instead of at the next
//! poll. The page reads it with `fetch` because `EventSource` cannot send an `Authorization`
//! header.

use std::{
    convert::Infallible,
    time::{Duration, Instant},
};

use axum::{
    extract::{Path, State},
    http::{header, HeaderValue},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    routing::get,
    Router,
};
use futures_util::stream::{self, Stream};
use nova_proto::SwarmView;
use tokio::sync::OwnedSemaphorePermit;

use crate::{ApiError, AppState, InferError};

const INDEX_HTML: &str = include_str!("../assets/index.html");

const JS: &str = "text/javascript; charset=utf-8";

/// The page's files under `/assets/`: name, content type, body. The scripts are ES modules that
/// import each other by these names.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", JS, include_str!("../assets/app.js")),
    ("dom.js", JS, include_str!("../assets/dom.js")),
    ("markdown.js", JS, include_str!("../assets/markdown.js")),
    ("chat.js", JS, include_str!("../assets/chat.js")),
    ("trace.js", JS, include_str!("../assets/trace.js")),
    ("conversations.js", JS, include_str!("../assets/conversations.js")),
    ("swarm.js", JS, include_str!("../assets/swarm.js")),
    ("topology.js", JS, include_str!("../assets/topology.js")),
    ("perf.js", JS, include_str!("../assets/perf.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("../assets/app.css")),
    ("favicon.svg", "image/svg+xml", include_str!("../assets/favicon.svg")),
];

/// Only this origin may provide scripts, styles, images and connections; nothing may frame the
/// page, and forms cannot post anywhere (the page sends everything with `fetch`).
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// How often a live feed looks at the swarm for a change. Well under the shortest heartbeat
/// anyone runs, so joins, departures and staleness show within one heartbeat.
const FEED_TICK: Duration = Duration::from_millis(250);

/// A feed sends the view at least this often even when nothing changed, so the page can tell
/// a quiet swarm from a dead connection.
const FEED_REFRESH: Duration = Duration::from_secs(5);

/// Most live feeds open at once (each is one idle connection and a timer); more get 429.
pub(crate) const MAX_FEEDS: usize = 64;

/// The page routes, none of which needs a token.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/index.html", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/assets/{name}", get(named_asset))
}

/// One of [`ASSETS`] by name; anything else is the API's ordinary 404.
async fn named_asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, ty, body)) => asset(ty, body),
        None => ApiError::NotFound.into_response(),
    }
}

/// One embedded file with its type and the page's security headers. `no-cache` makes browsers
/// revalidate, so an upgraded gateway serves its own page rather than a stale cached one.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

/// `GET /v1/swarm/events`: the `/v1/swarm` view as `swarm` events, sent when it changes
/// (checked every [`FEED_TICK`]) and at least every [`FEED_REFRESH`]. The stream ends when the
/// client goes away, which releases its slot.
pub(crate) async fn swarm_events(State(state): State<AppState>) -> Result<Response, ApiError> {
    let permit = state
        .feeds
        .clone()
        .try_acquire_owned()
        .map_err(|_| InferError::Overloaded { retry_after_s: 5 })?;
    Ok(Sse::new(feed(state, permit))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

struct Feed {
    state: AppState,
    _permit: OwnedSemaphorePermit,
    tick: tokio::time::Interval,
    last: Option<(SwarmView, Instant)>,
}

fn feed(
    state: AppState,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let mut tick = tokio::time::interval(FEED_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let f = Feed { state, _permit: permit, tick, last: None };
    stream::unfold(f, |mut f| async move {
        loop {
            f.tick.tick().await;
            let view = f.state.inference.swarm();
            // The clock moves every tick; only what it describes counts as a change.
            let key = SwarmView { now_ms: 0, ..view.clone() };
            let due = match &f.last {
                None => true,
                Some((last, at)) => *last != key || at.elapsed() >= FEED_REFRESH,
            };
            if due {
                f.last = Some((key, Instant::now()));
                // A view is plain data (strings, numbers, options): it always serializes.
                let data = serde_json::to_string(&view).unwrap_or_default();
                let ev = Event::default().event("swarm").data(data);
                return Some((Ok(ev), f));
            }
        }
    })
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
    use nova_proto::Strategy;
    use nova_proto::{FinishReason, Limits, Usage};
    use serde_json::json;
    use tokio::sync::mpsc;
    use tower::ServiceExt as _;

    use super::{ASSETS, INDEX_HTML};
    use crate::{
        router, AppState, Attempt, InferError, Inference, Job, JobEvent, JobEvents, JobResult,
        Trace,
    };

    const TOKEN: &str = "t0ken";
    const NODE: &str = "secret-node-name";

    /// A swarm of one named node whose jobs finish at once with a best_of_n-shaped result
    /// (no streamed tokens, scores in the trace).
    struct Fake;

    impl Inference for Fake {
        fn run(&self, job: Job) -> BoxFuture<'_, Result<JobEvents, InferError>> {
            let (tx, rx) = mpsc::channel(4);
            let attempt = |worker: &str, outcome: &str, score| Attempt {
                worker: worker.into(),
                outcome: outcome.into(),
                latency_ms: 10.0,
                ttft_ms: Some(1.0),
                tokens: 3,
                score: Some(score),
                text: job.debug.then(|| format!("answer of {worker}")),
                ..Attempt::default()
            };
            let result = JobResult {
                text: "Paris.".into(),
                finish_reason: FinishReason::Stop,
                usage: Usage { prompt_tokens: 5, completion_tokens: 3, ..Usage::default() },
                trace: Trace {
                    strategy: job.strategy,
                    winner: Some("a".into()),
                    attempts: vec![attempt("a", "won", 0.9), attempt("b", "lost", 0.2)],
                    latency_ms: 10.0,
                    ttft_ms: Some(1.0),
                    ..Trace::default()
                },
                sources: if job.rag {
                    vec![crate::Source {
                        n: 1,
                        node: "b".into(),
                        path: "notes/zx.md".into(),
                        chunk: 0,
                        score: 2.5,
                        text: "The ZX-4471 is maintained by Odile Varga.".into(),
                    }]
                } else {
                    Vec::new()
                },
            };
            tx.try_send(JobEvent::Done(Box::new(result))).expect("room");
            Box::pin(async move { Ok(JobEvents::new(rx)) })
        }

        fn models(&self) -> Vec<String> {
            vec!["smollm2-135m".into()]
        }

        fn swarm(&self) -> nova_proto::SwarmView {
            nova_proto::SwarmView {
                now_ms: 1,
                stale_after_ms: 30000,
                forget_after_ms: None,
                models: vec!["smollm2-135m".into()],
                workers: vec![nova_proto::SwarmWorker {
                    worker: nova_proto::WorkerSummary {
                        id: "a".into(),
                        name: NODE.into(),
                        models: vec!["smollm2-135m".into()],
                        tokens_per_s: 1.0,
                        queue_depth: 0,
                        queue_capacity: 1,
                        paused: false,
                        last_seen_ms: 1,
                    },
                    state: nova_proto::WorkerState::Ready,
                    status: None,
                    left_at_ms: None,
                }],
                pools: vec![],
            }
        }

        fn metrics(&self) -> String {
            String::new()
        }
    }

    fn app() -> axum::Router {
        router(AppState::new(Arc::new(Fake), TOKEN, Limits::default()))
    }

    async fn get(path: &str, token: Option<&str>) -> (StatusCode, axum::http::HeaderMap, Body) {
        let mut req = Request::get(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp =
            app().oneshot(req.body(Body::empty()).expect("request")).await.expect("infallible");
        let (parts, body) = resp.into_parts();
        (parts.status, parts.headers, body)
    }

    async fn text(body: Body) -> String {
        String::from_utf8(body.collect().await.expect("body").to_bytes().to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn the_page_is_served_without_a_token_and_holds_no_data() {
        let (status, headers, body) = get("/", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        let csp = headers["content-security-policy"].to_str().expect("ascii");
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("http") && !csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let html = text(body).await;
        assert!(html.contains("id=\"login-form\""), "{html}");
        assert!(!html.contains(NODE) && !html.contains("smollm2"), "the shell leaks data");
        // Every script is an external file from this origin (the CSP forbids inline ones).
        for tag in html.split("<script").skip(1) {
            assert!(tag.trim_start().starts_with("type=\"module\" src=\"/assets/"), "{tag}");
            assert!(tag.contains("></script>"), "inline script: {tag}");
        }
        assert!(!html.contains("http://") && !html.contains("https://"), "remote reference");
    }

    #[tokio::test]
    async fn assets_have_their_content_types() {
        let mut all: Vec<(String, &str, &str)> =
            ASSETS.iter().map(|(n, ty, body)| (format!("/assets/{n}"), *ty, *body)).collect();
        all.push(("/index.html".into(), "text/html; charset=utf-8", INDEX_HTML));
        for (path, ty, want) in all {
            let (status, headers, body) = get(&path, None).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(headers["content-type"], ty, "{path}");
            assert!(headers.contains_key("content-security-policy"), "{path}");
            assert_eq!(text(body).await, want, "{path}");
        }
        for missing in
            ["/assets/nope.js", "/assets/", "/assets/..%2Fsrc%2Flib.rs", "/assets/app.js/x"]
        {
            let (status, _, _) = get(missing, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
        }
    }

    /// Every `import … from './x.js'` names a served file: a module missing from [`ASSETS`]
    /// would break the whole page in a browser and nowhere else.
    #[test]
    fn every_module_import_is_served() {
        let served: Vec<&str> = ASSETS.iter().map(|(n, ..)| *n).collect();
        for (name, _, body) in ASSETS.iter().filter(|(n, ..)| n.ends_with(".js")) {
            for rest in body.split(" from './").skip(1) {
                let file = rest.split('\'').next().unwrap_or_default();
                assert!(served.contains(&file), "{name} imports {file}, which is not served");
            }
        }
        assert!(INDEX_HTML.contains("src=\"/assets/app.js\""));
    }

    /// Model output must never be parsed as markup: the scripts build DOM with createElement
    /// and textContent only.
    #[test]
    fn no_script_parses_markup() {
        for (name, _, body) in ASSETS.iter().filter(|(n, ..)| n.ends_with(".js")) {
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "DOMParser",
                "eval(",
            ] {
                assert!(!body.contains(sink), "{name} uses {sink}");
            }
        }
    }

    /// The page trims what it sends to the gateway's request limits; they must be the same.
    #[test]
    fn the_pages_request_limits_are_the_gateways() {
        let js = ASSETS.iter().find(|(n, ..)| *n == "conversations.js").map(|(_, _, b)| *b);
        let js = js.expect("conversations.js is served");
        let limits = Limits::default();
        let messages = format!("export const MAX_MESSAGES = {};", limits.max_messages);
        assert!(js.contains(&messages), "conversations.js lacks {messages}");
        assert_eq!(limits.max_prompt_bytes % 1024, 0);
        let bytes =
            format!("export const MAX_PROMPT_BYTES = {} * 1024;", limits.max_prompt_bytes / 1024);
        assert!(js.contains(&bytes), "conversations.js lacks {bytes}");
    }

    #[tokio::test]
    async fn the_live_feed_needs_the_token_and_sends_the_swarm() {
        for bad in [None, Some("wrong")] {
            let (status, _, body) = get("/v1/swarm/events", bad).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert!(!text(body).await.contains(NODE));
        }
        let (status, headers, body) = get("/v1/swarm/events", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], "text/event-stream");
        let mut body = body;
        let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
            .await
            .expect("first event in time")
            .expect("a frame")
            .expect("no error");
        let first = String::from_utf8(frame.into_data().expect("data").to_vec()).expect("utf-8");
        assert!(first.starts_with("event: swarm\ndata: {"), "{first}");
        assert!(first.contains(NODE), "{first}");
    }

    #[tokio::test]
    async fn a_streamed_best_of_n_answer_carries_its_text_and_scored_candidates() {
        let body = json!({"messages": [{"role": "user", "content": "capital of France?"}],
            "stream": true, "nova": {"strategy": "best_of_n", "debug": true}});
        let req = Request::post("/v1/chat/completions")
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("request");
        let resp = app().oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::OK);
        let sse = text(resp.into_body()).await;
        let chunks: Vec<serde_json::Value> = sse
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).expect("json"))
            .collect();
        let content: String =
            chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(content, "Paris.", "{sse}");
        let trace = chunks.iter().find_map(|c| c.get("nova")).expect("trace");
        assert_eq!(trace["strategy"], json!(Strategy::BestOfN));
        assert_eq!(trace["attempts"][1]["score"], 0.2);
        assert_eq!(trace["attempts"][1]["text"], "answer of b");
        assert!(sse.trim_end().ends_with("data: [DONE]"), "{sse}");
    }

    async fn post(path: &str, body: serde_json::Value) -> (StatusCode, serde_json::Value) {
        let req = Request::post(path)
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::from(body.to_string()))
            .expect("request");
        let resp = app().oneshot(req).await.expect("infallible");
        let status = resp.status();
        (status, serde_json::from_str(&text(resp.into_body()).await).expect("json"))
    }

    #[tokio::test]
    async fn rag_reaches_the_job_and_sources_come_back_on_both_endpoints() {
        let (status, v) = post("/submit", json!({"prompt": "who?", "rag": true})).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["sources"][0]["path"], "notes/zx.md", "{v}");
        let chat =
            json!({"messages": [{"role": "user", "content": "who?"}], "nova": {"rag": true}});
        let (status, v) = post("/v1/chat/completions", chat).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["nova"]["sources"][0]["n"], 1, "{v}");
        // Off by default: no sources at all.
        let (_, v) = post("/submit", json!({"prompt": "who?"})).await;
        assert_eq!(v["sources"], json!([]), "{v}");
        let chat = json!({"messages": [{"role": "user", "content": "who?"}]});
        let (_, v) = post("/v1/chat/completions", chat).await;
        assert!(v["nova"].get("sources").is_none(), "{v}");
    }

    #[tokio::test]
    async fn a_rag_that_is_not_a_boolean_is_a_clear_400_naming_it() {
        for (path, body) in [
            ("/submit", json!({"prompt": "who?", "rag": "yes"})),
            (
                "/v1/chat/completions",
                json!({"messages": [{"role": "user", "content": "q"}], "nova": {"rag": [1]}}),
            ),
        ] {
            let (status, v) = post(path, body).await;
            // A body of the wrong shape is `400 invalid_json`, as for every other field.
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {v}");
            assert!(
                v["error"]["message"].as_str().is_some_and(|m| m.contains("rag")),
                "{path}: {v}"
            );
        }
    }
}
