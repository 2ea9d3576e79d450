//! Hostile and careless input to a gateway with one worker: 100,000 tags, a prompt longer than
//! the context, NUL in the prompt, malformed JSON, a wrong token, a missing content type, an
//! oversized body. Each must get the precise status at once, never a 5xx, and the gateway must
//! keep answering `/healthz`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{
    cluster::{self, Gateway, TOKEN},
    load::{error_outcome, Outcome, Record, Stats},
    net,
    report::Row,
};

/// One raw request's result.
struct Probe {
    record: Record,
    status: Option<u16>,
}

/// POSTs `body` to `path` as is: `content_type` and `auth` (a full `Authorization` value) are
/// sent only when given.
async fn post(
    url: &str,
    path: &str,
    body: Vec<u8>,
    content_type: Option<&str>,
    auth: Option<&str>,
    timeout: Duration,
) -> Probe {
    let mut req = reqwest::Client::new().post(format!("{url}{path}")).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let t = Instant::now();
    let (outcome, status) = match tokio::time::timeout(timeout, async {
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let retry = resp.headers().contains_key(reqwest::header::RETRY_AFTER);
        Ok::<_, reqwest::Error>((status, retry, resp.bytes().await?))
    })
    .await
    {
        Err(_) => (Outcome::Hung, None),
        Ok(Err(e)) => (Outcome::Lost(e.to_string()), None),
        Ok(Ok((200, _, _))) => {
            (Outcome::Completed { text: String::new(), failed_attempts: 0 }, Some(200))
        }
        Ok(Ok((s, retry, body))) => (error_outcome(s, retry, &body), Some(s)),
    };
    Probe { record: Record { index: 0, outcome, latency: t.elapsed() }, status }
}

async fn healthz(url: &str) -> (Option<u16>, Duration) {
    let t = Instant::now();
    let r = reqwest::Client::new()
        .get(format!("{url}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    (r.ok().map(|r| r.status().as_u16()), t.elapsed())
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

fn chat(content: &str) -> Vec<u8> {
    json!({"messages": [{"role": "user", "content": content}], "max_tokens": 4, "temperature": 0})
        .to_string()
        .into_bytes()
}

async fn swarm_of_one(name: &str) -> (Gateway, cluster::Worker) {
    let gw = Gateway::start("127.0.0.1", &[]);
    let w = cluster::Worker::start(None, &format!("127.0.0.1:{}", gw.p2p), name);
    cluster::wait_ready(&gw.url, &[name], Duration::from_secs(60))
        .await
        .unwrap_or_else(|| panic!("worker not ready; {}", gw.node().tail()));
    (gw, w)
}

#[test]
fn a_hundred_thousand_tags_get_a_4xx_at_once_and_the_gateway_keeps_answering() {
    net::block_on(None, async {
        let (gw, _w) = swarm_of_one("tags-a").await;
        // 100,000 seven-character tags: 1,000,000 bytes of tags, just under the 1 MiB limit.
        let tags: Vec<String> = (0..100_000).map(|i| format!("t{i:06}")).collect();
        let body = json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4,
            "nova": {"tags": tags}})
        .to_string()
        .into_bytes();
        assert!(body.len() < nova_api::MAX_BODY, "{} bytes is over the body limit", body.len());
        let size = body.len();
        let rss_before = gw.rss_kib();
        let mut records = Vec::new();
        let mut notes = Vec::new();
        let mut row_failures = Vec::new();
        // The second request is the one that wedged the gateway on main.
        for round in 1..=2 {
            let p = post(
                &gw.url,
                "/v1/chat/completions",
                body.clone(),
                Some("application/json"),
                Some(&bearer()),
                Duration::from_secs(30),
            )
            .await;
            let (hs, ht) = healthz(&gw.url).await;
            notes.push(format!(
                "request {round}: {} in {:.1} ms, then /healthz {} in {:.1} ms",
                p.status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| format!("{:?}", p.record.outcome)),
                p.record.latency.as_secs_f64() * 1000.0,
                hs.map(|s| s.to_string()).unwrap_or_else(|| "no answer".into()),
                ht.as_secs_f64() * 1000.0
            ));
            if !p.status.is_some_and(|s| (400..500).contains(&s)) {
                row_failures.push(format!("request {round} got {:?}, not a 4xx", p.status));
            }
            if hs != Some(200) {
                row_failures
                    .push(format!("/healthz did not answer within 5 s after request {round}"));
            }
            records.push(p.record);
        }
        let mut row = Row::new(
            &format!("100,000 tags in one request ({size} bytes), twice"),
            "bad input",
            Stats::of(&records),
        );
        row.rss_before_kib = rss_before;
        row.rss_after_kib = gw.rss_kib();
        row.notes = notes.join("; ");
        for f in row_failures {
            row.check(false, f);
        }
        row.finish();
    });
}

/// (case, body, content type, authorization, acceptable statuses)
type Case<'a> = (&'a str, Vec<u8>, Option<&'a str>, Option<&'a str>, &'a [u16]);

#[test]
fn bad_requests_get_a_precise_4xx_and_never_a_5xx() {
    net::block_on(None, async {
        let (gw, _w) = swarm_of_one("bad-a").await;
        let long = "hello ".repeat(3000);
        let json = Some("application/json");
        let auth = bearer();
        let wrong = "Bearer not-the-token".to_string();
        let lower = format!("bearer {TOKEN}");
        let cases: Vec<Case<'_>> = vec![
            (
                "prompt longer than the context (~3,000 tokens, ctx 2048)",
                chat(&long),
                json,
                Some(&auth),
                &[400, 413, 422],
            ),
            ("NUL in the prompt", chat("hi\u{0}there"), json, Some(&auth), &[400, 422]),
            ("malformed JSON", b"{\"messages\": [".to_vec(), json, Some(&auth), &[400]),
            ("wrong bearer token", chat("hi"), json, Some(&wrong), &[401]),
            ("no bearer token", chat("hi"), json, None, &[401]),
            ("`bearer` scheme in lower case (RFC 7235)", chat("hi"), json, Some(&lower), &[200]),
            ("JSON body without Content-Type (README curl)", chat("hi"), None, Some(&auth), &[200]),
            (
                "unknown model",
                json!({"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]})
                    .to_string()
                    .into_bytes(),
                json,
                Some(&auth),
                &[404],
            ),
            ("body over 1 MiB", chat(&"x".repeat(1 << 20)), json, Some(&auth), &[413]),
            (
                "max_tokens over the limit",
                json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1_000_000})
                    .to_string()
                    .into_bytes(),
                json,
                Some(&auth),
                &[400, 422],
            ),
        ];
        let mut failed = Vec::new();
        for (case, body, ct, a, want) in cases {
            let p =
                post(&gw.url, "/v1/chat/completions", body, ct, a, Duration::from_secs(60)).await;
            let (hs, _) = healthz(&gw.url).await;
            let mut row = Row::new(case, "bad input", Stats::of(std::slice::from_ref(&p.record)));
            row.notes = format!(
                "{} in {:.0} ms (want {})",
                match &p.record.outcome {
                    Outcome::CleanError { status, code, .. } => format!("{status} {code}"),
                    other =>
                        p.status.map(|s| s.to_string()).unwrap_or_else(|| format!("{other:?}")),
                },
                p.record.latency.as_secs_f64() * 1000.0,
                want.iter().map(u16::to_string).collect::<Vec<_>>().join("/")
            );
            row.check(p.status.is_some_and(|s| want.contains(&s)), format!("got {:?}", p.status));
            row.check(hs == Some(200), "/healthz stopped answering");
            // Print every row; fail once all are in.
            if let Err(e) = row.emit() {
                failed.push(e);
            }
        }
        assert!(failed.is_empty(), "failed: {failed:?}");
    });
}
