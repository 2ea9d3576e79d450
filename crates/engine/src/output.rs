//! Turns a model's raw token bytes into the text a client sees: whole UTF-8 characters only,
//! cut before the first stop string, and never showing a stop string's beginning that a later
//! token might complete.

/// Streaming text filter for one generation.
#[derive(Debug, Default)]
pub struct OutputFilter {
    stops: Vec<String>,
    /// Bytes of an incomplete UTF-8 character.
    partial: Vec<u8>,
    /// Decoded text not yet released because it may begin a stop string.
    held: String,
    stopped: bool,
}

impl OutputFilter {
    /// A filter that stops at any of `stops` (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        Self { stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(), ..Self::default() }
    }

    /// Whether a stop string has matched; nothing more will be released.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Adds a token's bytes and returns the text that is now safe to release.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        if self.stopped {
            return String::new();
        }
        self.partial.extend_from_slice(bytes);
        let decoded = take_utf8(&mut self.partial);
        self.held.push_str(&decoded);
        self.release()
    }

    /// Ends the stream and returns whatever is still held (an incomplete trailing character
    /// becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        if self.stopped {
            return String::new();
        }
        if !self.partial.is_empty() {
            self.held.push_str(&String::from_utf8_lossy(&self.partial));
            self.partial.clear();
        }
        std::mem::take(&mut self.held)
    }

    fn release(&mut self) -> String {
        let first_stop = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min();
        if let Some(at) = first_stop {
            self.stopped = true;
            self.held.truncate(at);
            return std::mem::take(&mut self.held);
        }
        // Keep the longest tail of `held` that is a proper prefix of some stop string.
        let keep =
            self.stops.iter().map(|s| longest_suffix_prefix(&self.held, s)).max().unwrap_or(0);
        let cut = self.held.len() - keep;
        let rest = self.held.split_off(cut);
        std::mem::replace(&mut self.held, rest)
    }
}

/// Removes and returns the longest valid UTF-8 prefix of `buf`, replacing invalid sequences
/// with U+FFFD and leaving an incomplete final character in `buf`.
fn take_utf8(buf: &mut Vec<u8>) -> String {
    let mut out = String::new();
    loop {
        match std::str::from_utf8(buf) {
            Ok(s) => {
                out.push_str(s);
                buf.clear();
                return out;
            }
            Err(e) => {
                let valid = e.valid_up_to();
                out.push_str(&String::from_utf8_lossy(&buf[..valid]));
                match e.error_len() {
                    // Truncated character at the end: wait for more bytes.
                    None => {
                        buf.drain(..valid);
                        return out;
                    }
                    Some(bad) => {
                        out.push('\u{FFFD}');
                        buf.drain(..valid + bad);
                    }
                }
            }
        }
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `stop`, on a char boundary.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    let max = stop.len().saturating_sub(1).min(text.len());
    (1..=max)
        .rev()
        .find(|&n| {
            let start = text.len() - n;
            text.is_char_boundary(start) && stop.starts_with(&text[start..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&[u8]]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut f = OutputFilter::new(&stops);
        let mut out = String::new();
        for p in pieces {
            out.push_str(&f.push(p));
        }
        out.push_str(&f.finish());
        (out, f.stopped())
    }

    #[test]
    fn passes_text_through() {
        assert_eq!(run(&[], &[b"Hello", b", world"]), ("Hello, world".into(), false));
    }

    #[test]
    fn joins_split_multibyte_characters() {
        let euro = "€".as_bytes();
        assert_eq!(run(&[], &[&euro[..1], &euro[1..2], &euro[2..]]).0, "€");
    }

    #[test]
    fn replaces_invalid_bytes() {
        assert_eq!(run(&[], &[b"a\xffb"]).0, "a\u{FFFD}b");
        assert_eq!(run(&[], &[b"a\xe2\x82"]).0, "a\u{FFFD}");
    }

    #[test]
    fn stops_before_stop_string_split_across_tokens() {
        assert_eq!(run(&["###"], &[b"one #", b"#", b"# two"]), ("one ".into(), true));
    }

    #[test]
    fn releases_held_text_that_was_not_a_stop() {
        let stops: Vec<String> = vec!["END".into()];
        let mut f = OutputFilter::new(&stops);
        assert_eq!(f.push(b"the E"), "the ");
        assert_eq!(f.push(b"xit"), "Exit");
        assert_eq!(f.finish(), "");
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        assert_eq!(run(&["b", "a"], &[b"xxab"]).0, "xx");
    }
}
