//! `--url` values: what people paste. `127.0.0.1:8080` means http (as curl takes it), a
//! trailing `/` or `/v1` is the same server (OpenAI clients take the base URL with `/v1`), and
//! anything that is not http(s) is refused with an example rather than with the URL parser's
//! "relative URL without a base".

/// Parses a `--url`: an http(s) server root, without a trailing `/` or `/v1`.
pub(crate) fn parse(value: &str) -> Result<String, String> {
    let value = value.trim();
    let with_scheme =
        if value.contains("://") { value.to_owned() } else { format!("http://{value}") };
    let url = reqwest::Url::parse(&with_scheme).map_err(|e| {
        format!("{value:?} is not a URL ({e}); write it as http://HOST:PORT, e.g. http://127.0.0.1:8080")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{value:?}: only http:// and https:// servers are supported"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{value:?} names no host; e.g. http://127.0.0.1:8080"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{value:?}: give the server's base URL, without ?query or #fragment"));
    }
    let mut root = url.as_str().trim_end_matches('/').to_owned();
    if let Some(base) = root.strip_suffix("/v1") {
        root = base.to_owned();
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn what_people_paste_is_one_server_root() {
        for given in [
            "127.0.0.1:8080",
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8080/v1",
            "http://127.0.0.1:8080/v1/",
            " 127.0.0.1:8080/v1 ",
        ] {
            assert_eq!(parse(given).as_deref(), Ok("http://127.0.0.1:8080"), "{given}");
        }
        assert_eq!(parse("https://llm.example/api/v1").as_deref(), Ok("https://llm.example/api"));
        assert_eq!(parse("http://[::1]:8080").as_deref(), Ok("http://[::1]:8080"));
    }

    #[test]
    fn what_cannot_be_a_server_is_refused_with_an_example() {
        for (given, says) in [
            ("ftp://host:21", "only http:// and https://"),
            ("http://", "http://HOST:PORT"),
            ("http://h:8080/?x=1", "without ?query"),
            (":::", "http://HOST:PORT"),
        ] {
            let e = parse(given).expect_err(given);
            assert!(e.contains(says), "{given}: {e}");
        }
    }
}
