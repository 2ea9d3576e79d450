//! Routing tags: a bounded parser and their normalisation.

use std::fmt;

use crate::{Limits, ValidationError};

/// Most tags a request body may list; a parser reading one more stops there, so a list of a
/// million tags costs the same as one of 65. [`normalize_tags`] then applies the (smaller)
/// configured limit.
pub const MAX_TAGS_READ: usize = 64;

/// The start of the parse error of a tag list longer than [`MAX_TAGS_READ`]: the API maps it
/// to `422 bad_tags`.
pub const TOO_MANY_TAGS: &str = "too many tags";

/// Deserializes a list of tags, failing at the first one past [`MAX_TAGS_READ`] instead of
/// reading the rest (`#[serde(deserialize_with = "nova_proto::deserialize_tags")]`).
pub fn deserialize_tags<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct Bounded;
    impl<'de> serde::de::Visitor<'de> for Bounded {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {MAX_TAGS_READ} tags")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(t) = seq.next_element::<String>()? {
                if out.len() == MAX_TAGS_READ {
                    return Err(serde::de::Error::custom(format!(
                        "{TOO_MANY_TAGS}: more than {MAX_TAGS_READ}"
                    )));
                }
                out.push(t);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Bounded)
}

/// Normalises routing tags: trimmed, lowercased, duplicates dropped, order kept. Refuses more
/// than `limits.max_tags`, an empty or over-long tag, or characters outside letters, digits and
/// `- _ . : /`. Checks the count before looking at any tag, so a million tags cost nothing.
pub fn normalize_tags(tags: &[String], limits: &Limits) -> Result<Vec<String>, ValidationError> {
    let bad = |detail: String| ValidationError::BadTags {
        max: limits.max_tags,
        max_bytes: limits.max_tag_bytes,
        detail,
    };
    if tags.len() > limits.max_tags {
        return Err(bad(format!("got {} tags", tags.len())));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for (i, raw) in tags.iter().enumerate() {
        let t = raw.trim();
        if t.is_empty() || t.len() > limits.max_tag_bytes {
            return Err(bad(format!("tag {i} is {} bytes", t.len())));
        }
        if !t.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/')) {
            return Err(bad(format!("tag {i} has a character outside the allowed set")));
        }
        let t = t.to_lowercase();
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[test]
    fn tags_are_bounded_and_normalised() {
        let l = Limits::default();
        let tags = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(normalize_tags(&tags(&[" Geo ", "geo", "math"]), &l).unwrap(), ["geo", "math"]);
        let many: Vec<String> = (0..100_000).map(|i| i.to_string()).collect();
        assert_eq!(normalize_tags(&many, &l).unwrap_err().kind(), "bad_tags");
        #[derive(Deserialize)]
        struct T {
            #[serde(deserialize_with = "deserialize_tags")]
            tags: Vec<String>,
        }
        let ok: T = serde_json::from_str(r#"{"tags": ["a", "b"]}"#).expect("two tags");
        assert_eq!(ok.tags, ["a", "b"]);
        let list: Vec<String> = (0..100_000).map(|i| format!("t{i}")).collect();
        let body = serde_json::json!({ "tags": list }).to_string();
        let e = serde_json::from_str::<T>(&body).err().expect("refused");
        assert!(e.to_string().starts_with(TOO_MANY_TAGS), "{e}");
        // It stops at the 65th tag: the error points near the start of the 1 MB body.
        assert!(e.column() < 1000, "{e}");
        for bad in ["", "  ", &"x".repeat(33), "a b", "<script>", "a\0"] {
            assert_eq!(
                normalize_tags(&tags(&[bad]), &l).unwrap_err().kind(),
                "bad_tags",
                "{bad:?}"
            );
        }
    }
}
