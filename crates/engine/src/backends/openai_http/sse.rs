//! Server-sent events as OpenAI-compatible servers send them: `data: {json}` lines, ended by
//! `data: [DONE]`. [`Decoder`] turns the raw bytes into token events with no I/O and no clock,
//! so the parser can be tested and fuzzed on its own.

use nova_proto::{FinishReason, Usage};
use serde_json::Value;

use crate::EngineError;

/// Longest SSE line accepted; a server that sends more is broken or hostile.
const MAX_LINE: usize = 1 << 20;

/// Splits a byte stream into lines without trusting it to ever send a newline.
#[derive(Debug, Default)]
struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, EngineError> {
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

/// What a stream decoded to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    /// A piece of generated text.
    Token(String),
    /// `[DONE]`: the stream is complete. `usage.generation_ms` is 0 (the decoder has no clock).
    Done {
        /// Why generation stopped (`stop` when the server never said).
        finish_reason: FinishReason,
        /// Token counts the server reported, else the number of text events seen.
        usage: Usage,
    },
}

/// Decodes an upstream event stream, fed in arbitrary pieces.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    lines: LineSplitter,
    usage: Usage,
    finish: Option<FinishReason>,
    generated: u32,
    done: bool,
}

impl Decoder {
    /// Feeds `chunk`, appending what it completes to `out`. After [`Event::Done`] the rest is
    /// ignored. On error, `out` holds the events decoded before it (they were valid).
    pub(crate) fn push(&mut self, chunk: &[u8], out: &mut Vec<Event>) -> Result<(), EngineError> {
        if self.done {
            return Ok(());
        }
        for line in self.lines.push(chunk)? {
            let Some(data) = line.strip_prefix("data:").map(str::trim) else { continue };
            if data == "[DONE]" {
                let mut usage = self.usage;
                if usage.completion_tokens == 0 {
                    usage.completion_tokens = self.generated;
                }
                let finish_reason = self.finish.unwrap_or(FinishReason::Stop);
                out.push(Event::Done { finish_reason, usage });
                self.done = true;
                return Ok(());
            }
            let event = parse_chunk(data)?;
            if let Some(message) = event.error {
                return Err(EngineError::Upstream { status: None, message });
            }
            if let Some((prompt, completion)) = event.usage {
                self.usage.prompt_tokens = prompt;
                self.usage.completion_tokens = completion;
            }
            if event.finish.is_some() {
                self.finish = event.finish;
            }
            if !event.text.is_empty() {
                self.generated = self.generated.saturating_add(1);
                out.push(Event::Token(event.text));
            }
        }
        Ok(())
    }
}

/// Decodes `input` delivered in pieces of `piece` bytes (at least 1), as the fuzz target does:
/// the events up to the end or the first error, and that error.
pub(crate) fn decode_all(input: &[u8], piece: usize) -> (Vec<Event>, Option<EngineError>) {
    let mut decoder = Decoder::default();
    let mut out = Vec::new();
    for chunk in input.chunks(piece.max(1)) {
        if let Err(e) = decoder.push(chunk, &mut out) {
            return (out, Some(e));
        }
    }
    (out, None)
}

/// What one `data:` chunk carried.
#[derive(Debug, Default, PartialEq)]
struct Chunk {
    text: String,
    finish: Option<FinishReason>,
    /// (prompt tokens, completion tokens)
    usage: Option<(u32, u32)>,
    error: Option<String>,
}

fn parse_chunk(data: &str) -> Result<Chunk, EngineError> {
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

    #[test]
    fn decodes_a_stream_the_same_whatever_the_pieces() {
        let stream = concat!(
            ": keep-alive comment\r\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"Par\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"is é\"},\"finish_reason\":\"length\"}]}\n\n",
            "data: [DONE]\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"after done\"}}]}\n",
        );
        let expected = vec![
            Event::Token("Par".into()),
            Event::Token("is é".into()),
            Event::Done {
                finish_reason: FinishReason::Length,
                usage: Usage { completion_tokens: 2, ..Usage::default() },
            },
        ];
        for piece in [1, 2, 3, 7, stream.len()] {
            let (events, err) = decode_all(stream.as_bytes(), piece);
            assert!(err.is_none(), "{err:?}");
            assert_eq!(events, expected, "pieces of {piece}");
        }
    }

    #[test]
    fn an_error_event_keeps_the_tokens_before_it() {
        let stream =
            "data: {\"choices\":[{\"text\":\"a\"}]}\ndata: {\"error\":{\"message\":\"boom\"}}\n";
        let (events, err) = decode_all(stream.as_bytes(), stream.len());
        assert_eq!(events, vec![Event::Token("a".into())]);
        assert!(matches!(err, Some(EngineError::Upstream { message, .. }) if message == "boom"));
    }
}
