//! Response formats: the shape an answer must have, and their checks.

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Most bytes of a JSON schema in a [`ResponseFormat`]: schemas of real applications are a
/// few KB, and the grammar llama.cpp builds from one grows with it.
pub const MAX_SCHEMA_BYTES: usize = 16 * 1024;

/// The shape an answer must have, enforced token by token (llama.cpp's grammar sampling), so
/// even a small model's answer parses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Any JSON object.
    JsonObject,
    /// JSON matching a JSON Schema, given as its compact JSON text (at most
    /// [`MAX_SCHEMA_BYTES`]; a JSON object).
    JsonSchema {
        /// The schema.
        schema: String,
    },
}

impl ResponseFormat {
    /// The schema the answer must match: any object for [`Self::JsonObject`].
    pub fn schema(&self) -> &str {
        match self {
            Self::JsonObject => r#"{"type":"object"}"#,
            Self::JsonSchema { schema } => schema,
        }
    }
}

/// Checks a response format: a schema is a JSON object of bounded size; `ignore_eos` cannot
/// go with it, since a complete answer leaves the end of text as the only token allowed.
pub(crate) fn check(f: &ResponseFormat, ignore_eos: bool) -> Result<(), ValidationError> {
    let bad = |detail: String| ValidationError::BadFormat { detail };
    if ignore_eos {
        return Err(bad("ignore_eos cannot be combined with a JSON response format".into()));
    }
    if let ResponseFormat::JsonSchema { schema } = f {
        if schema.len() > MAX_SCHEMA_BYTES {
            return Err(bad(format!(
                "the JSON schema is {} bytes; at most {MAX_SCHEMA_BYTES}",
                schema.len()
            )));
        }
        if schema.contains('\0') {
            return Err(ValidationError::NulCharacter { field: "the JSON schema" });
        }
        match serde_json::from_str::<serde_json::Value>(schema) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => return Err(bad("the JSON schema must be a JSON object".into())),
            Err(e) => return Err(bad(format!("the JSON schema is not valid JSON: {e}"))),
        }
    }
    Ok(())
}
