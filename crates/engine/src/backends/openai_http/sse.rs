//! Server-sent events as OpenAI-compatible servers send them: `data: {json}` lines.

use nova_proto::FinishReason;
use serde_json::Value;

use crate::EngineError;

/// Longest SSE line accepted; a server that sends more is broken or hostile.
const MAX_LINE: usize = 1 << 20;

/// Splits a byte stream into lines without trusting it to ever send a newline.
#[derive(Debug, Default)]
pub(super) struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    pub(super) fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, EngineError> {
        self.buf.extend_from_slice(chunk);
        let mut lines = Vec::new();
        while let Some(at) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=at).collect();
            let line = String::from_utf8_lossy(&line);
            lines.push(line.trim_end_matches(['\r', '\n']).to_string());
        }
        if self.buf.len() > MAX_LINE {
            return Err(EngineError::Upstream {
                status: None,
                message: format!("an event line exceeded {MAX_LINE} bytes"),
            });
        }
        Ok(lines)
    }
}

/// What one `data:` chunk carried.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Chunk {
    pub(super) text: String,
    pub(super) finish: Option<FinishReason>,
    /// (prompt tokens, completion tokens)
    pub(super) usage: Option<(u32, u32)>,
    pub(super) error: Option<String>,
}

pub(super) fn parse_chunk(data: &str) -> Result<Chunk, EngineError> {
    let v: Value = serde_json::from_str(data).map_err(|e| EngineError::Upstream {
        status: None,
        message: format!("malformed event ({e}): {}", data.chars().take(120).collect::<String>()),
    })?;
    let mut out = Chunk::default();
    if let Some(err) = v.get("error") {
        out.error = Some(err["message"].as_str().unwrap_or("unknown error").to_string());
        return Ok(out);
    }
    if let Some(choice) = v["choices"].get(0) {
        // Chat streams put text in delta.content; completion streams in text.
        let text = choice["delta"]["content"].as_str().or_else(|| choice["text"].as_str());
        out.text = text.unwrap_or_default().to_string();
        out.finish = match choice["finish_reason"].as_str() {
            Some("length") => Some(FinishReason::Length),
            Some(_) => Some(FinishReason::Stop),
            None => None,
        };
    }
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        let n = |k: &str| u[k].as_u64().unwrap_or(0) as u32;
        out.usage = Some((n("prompt_tokens"), n("completion_tokens")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_across_chunks() -> Result<(), EngineError> {
        let mut s = LineSplitter::default();
        assert!(s.push(b"data: {\"a\"")?.is_empty());
        assert_eq!(
            s.push(b":1}\r\n\r\ndata: [DONE]\n")?,
            vec!["data: {\"a\":1}", "", "data: [DONE]"]
        );
        Ok(())
    }

    #[test]
    fn refuses_endless_lines() {
        let mut s = LineSplitter::default();
        assert!(s.push(&vec![b'x'; MAX_LINE + 1]).is_err());
    }

    #[test]
    fn parses_chat_completion_and_error_chunks() -> Result<(), EngineError> {
        let c = parse_chunk(r#"{"choices":[{"delta":{"content":"Hi"},"finish_reason":null}]}"#)?;
        assert_eq!(c.text, "Hi");
        let c = parse_chunk(r#"{"choices":[{"text":"x","finish_reason":"length"}]}"#)?;
        assert_eq!((c.text.as_str(), c.finish), ("x", Some(FinishReason::Length)));
        let c = parse_chunk(r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}"#)?;
        assert_eq!(c.usage, Some((3, 5)));
        let c = parse_chunk(r#"{"error":{"message":"boom"}}"#)?;
        assert_eq!(c.error.as_deref(), Some("boom"));
        assert!(parse_chunk("not json").is_err());
        Ok(())
    }
}
