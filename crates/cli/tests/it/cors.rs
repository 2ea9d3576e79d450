//! Browser apps (issue 14, item 9): `--cors-origin` lets named origins call the API from a
//! page, preflight included; without it no CORS header is ever sent. `/health` is `/healthz`.

use std::time::Duration;

use reqwest::{header, Method};

const TOKEN: &str = "cors-token";

async fn preflight(url: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(Method::OPTIONS, format!("{url}/v1/chat/completions"))
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization,content-type")
        .send()
        .await
        .expect("preflight")
}

fn allowed(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .map(|v| v.to_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn named_origins_pass_preflight_and_others_get_no_cors_headers() {
    let (_g, url, _) = crate::spawn_gateway(
        TOKEN,
        "cors-secret",
        &["--cors-origin", "http://localhost:3000", "--cors-origin", "https://app.example"],
    );
    // A preflight carries no token: it is answered before auth, naming what may be sent.
    let r = preflight(&url, "http://localhost:3000").await;
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(allowed(&r).as_deref(), Some("http://localhost:3000"));
    let methods = r.headers()[header::ACCESS_CONTROL_ALLOW_METHODS].to_str().unwrap().to_owned();
    assert!(methods.contains("POST"), "{methods}");
    let headers =
        r.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS].to_str().unwrap().to_lowercase();
    assert!(headers.contains("authorization") && headers.contains("content-type"), "{headers}");
    // The real request from that page still needs the token, and carries the header.
    let r = reqwest::Client::new()
        .get(format!("{url}/v1/models"))
        .header(header::ORIGIN, "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(allowed(&r).as_deref(), Some("https://app.example"));
    let r = reqwest::Client::new()
        .get(format!("{url}/v1/models"))
        .header(header::ORIGIN, "https://app.example")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(allowed(&r).as_deref(), Some("https://app.example"));
    // Another site's page: no CORS header, so its browser keeps the answer from it.
    let r = preflight(&url, "https://evil.example").await;
    assert_eq!(allowed(&r), None);

    // /health answers as /healthz does, without a token.
    let r = reqwest::get(format!("{url}/health")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok\n");
}

#[tokio::test]
async fn without_cors_origin_no_page_of_any_site_is_allowed() {
    let (_g, url, _) = crate::spawn_gateway(TOKEN, "cors-secret", &[]);
    let r = preflight(&url, "http://localhost:3000").await;
    assert_eq!(allowed(&r), None);
}

#[test]
fn bad_or_too_many_origins_are_refused_at_start() {
    let home = crate::home();
    let run = |origins: &[String]| {
        let mut args = vec!["serve", "--bind", "127.0.0.1:0", "--no-local"];
        for o in origins {
            args.extend(["--cors-origin", o.as_str()]);
        }
        crate::run(crate::nova(home.path()).args(&args), Duration::from_secs(30))
    };
    for bad in ["*", "localhost:3000", "http://h/path", "ftp://h", "http://a b"] {
        let out = run(&[bad.to_owned()]);
        assert!(!out.status.success(), "{bad} accepted");
        let err = crate::stderr(&out);
        assert!(err.contains("e.g. http://localhost:3000"), "{bad}: {err}");
    }
    let many: Vec<String> = (0..65).map(|i| format!("http://h{i}.example")).collect();
    let out = run(&many);
    assert!(!out.status.success());
    assert!(crate::stderr(&out).contains("at most 64"), "{}", crate::stderr(&out));
}
