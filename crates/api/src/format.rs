//! Response formats as clients ask for them: OpenAI's `response_format` and Ollama's `format`.
//! Both become a [`ResponseFormat`] the engines enforce while sampling; the schema's size and
//! shape are checked with the rest of the request ([`nova_proto::ValidRequest::check`]).

use nova_proto::ResponseFormat;
use serde_json::Value;

/// OpenAI's `response_format`: `{"type": "text"}`, `{"type": "json_object"}` or
/// `{"type": "json_schema", "json_schema": {"name": …, "schema": {…}, "strict": …}}`.
pub(crate) fn openai(v: Option<&Value>) -> Result<Option<ResponseFormat>, String> {
    let v = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => return Err("response_format must be an object with a \"type\"".into()),
    };
    match v.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(ResponseFormat::JsonObject)),
        Some("json_schema") => {
            let schema = v
                .get("json_schema")
                .and_then(|j| j.get("schema"))
                .ok_or("response_format json_schema needs json_schema.schema, the schema itself")?;
            schema_of(schema).map(Some)
        }
        Some(other) => Err(format!(
            "response_format type {:?} is not supported; use text, json_object or json_schema",
            cut(other)
        )),
        None => Err("response_format must be an object with a \"type\"".into()),
    }
}

/// Ollama's `format`: `""` (free text), `"json"`, or a JSON schema object.
pub(crate) fn ollama(v: Option<&Value>) -> Result<Option<ResponseFormat>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s == "json" => Ok(Some(ResponseFormat::JsonObject)),
        Some(Value::String(s)) => {
            Err(format!("format {:?} is not supported; use \"json\" or a JSON schema", cut(s)))
        }
        Some(schema @ Value::Object(_)) => schema_of(schema).map(Some),
        Some(_) => Err("format must be \"json\" or a JSON schema object".into()),
    }
}

fn schema_of(schema: &Value) -> Result<ResponseFormat, String> {
    if !schema.is_object() {
        return Err("the JSON schema must be a JSON object".into());
    }
    Ok(ResponseFormat::JsonSchema { schema: schema.to_string() })
}

/// A client's string quoted back, cut short: an error never echoes a large input.
fn cut(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn openai_formats_map_to_nova_formats() {
        assert_eq!(openai(None), Ok(None));
        assert_eq!(openai(Some(&json!({"type": "text"}))), Ok(None));
        assert_eq!(
            openai(Some(&json!({"type": "json_object"}))),
            Ok(Some(ResponseFormat::JsonObject))
        );
        let f = json!({"type": "json_schema", "json_schema": {"name": "x", "strict": true,
            "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}});
        assert_eq!(
            openai(Some(&f)),
            Ok(Some(ResponseFormat::JsonSchema {
                schema: r#"{"properties":{"a":{"type":"integer"}},"type":"object"}"#.into()
            }))
        );
    }

    #[test]
    fn malformed_openai_formats_are_refused_by_what_is_wrong() {
        let err = |v: Value| openai(Some(&v)).unwrap_err();
        assert!(err(json!("json")).contains("must be an object"));
        assert!(err(json!({})).contains("\"type\""));
        assert!(err(json!({"type": "json_schema"})).contains("json_schema.schema"));
        assert!(err(json!({"type": "json_schema", "json_schema": {"schema": [1]}}))
            .contains("JSON object"));
        let long = err(json!({"type": "x".repeat(100_000)}));
        assert!(long.contains("not supported") && long.len() < 200, "{long}");
    }

    #[test]
    fn ollama_formats_map_to_nova_formats() {
        assert_eq!(ollama(Some(&json!(""))), Ok(None));
        assert_eq!(ollama(Some(&json!("json"))), Ok(Some(ResponseFormat::JsonObject)));
        assert!(matches!(
            ollama(Some(&json!({"type": "object"}))),
            Ok(Some(ResponseFormat::JsonSchema { .. }))
        ));
        assert!(ollama(Some(&json!("yaml"))).unwrap_err().contains("not supported"));
        assert!(ollama(Some(&json!(3))).unwrap_err().contains("JSON schema object"));
    }
}
