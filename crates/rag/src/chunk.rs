//! Cutting a document into chunks: passages of a few paragraphs under one heading, small
//! enough to quote and to score, each starting with its heading trail.

use nova_proto::knowledge::{prefix_utf8, MAX_SNIPPET_BYTES};

use crate::walk::Kind;

/// Paragraphs are merged into one chunk while it stays within this many bytes.
pub(crate) const TARGET_CHUNK_BYTES: usize = 700;
/// A paragraph longer than this is split, at a sentence end if there is one, else between
/// words, else anywhere (on a character boundary).
pub(crate) const MAX_CHUNK_BYTES: usize = 1200;
/// Longest heading trail put before a chunk's text; outer headings are dropped to fit.
pub(crate) const MAX_TRAIL_BYTES: usize = 300;
/// Longest single heading kept in a trail.
const MAX_HEADING_BYTES: usize = 120;

// A whole chunk (trail, newline, body) fits in a snippet, so what the gateway quotes is what
// was scored.
const _: () = assert!(MAX_TRAIL_BYTES + 1 + MAX_CHUNK_BYTES <= MAX_SNIPPET_BYTES);

/// A paragraph and the headings it sits under, outermost first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block {
    pub(crate) headings: Vec<String>,
    pub(crate) text: String,
}

/// The chunks of a document of `kind`.
pub(crate) fn chunks(kind: Kind, src: &str) -> Vec<String> {
    let blocks = match kind {
        Kind::Markdown => crate::markdown::blocks(src),
        Kind::Html => crate::html::blocks(src),
        Kind::Text => {
            paragraphs(src).into_iter().map(|text| Block { headings: Vec::new(), text }).collect()
        }
    };
    assemble(&blocks)
}

/// Blank-line separated paragraphs, whitespace collapsed, empty ones dropped.
pub(crate) fn paragraphs(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in src.lines() {
        if line.trim().is_empty() {
            push_collapsed(&mut out, &mut cur);
        } else {
            cur.push_str(line);
            cur.push(' ');
        }
    }
    push_collapsed(&mut out, &mut cur);
    out
}

fn push_collapsed(out: &mut Vec<String>, cur: &mut String) {
    let text = collapse(cur);
    cur.clear();
    if !text.is_empty() {
        out.push(text);
    }
}

/// `s` with every run of whitespace made one space, trimmed.
pub(crate) fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Merges and splits `blocks` into chunks. Blocks under different headings never share a
/// chunk, so a chunk's trail is true of all its text. Chunks without a single term are dropped.
pub(crate) fn assemble(blocks: &[Block]) -> Vec<String> {
    let mut out = Vec::new();
    let mut body = String::new();
    let mut headings: &[String] = &[];
    for block in blocks {
        if block.headings != headings {
            flush(&mut out, headings, &mut body);
            headings = &block.headings;
        }
        for piece in split(&collapse(&block.text)) {
            if !body.is_empty() && body.len() + 1 + piece.len() > TARGET_CHUNK_BYTES {
                flush(&mut out, headings, &mut body);
            }
            if !body.is_empty() {
                body.push(' ');
            }
            body.push_str(piece);
        }
    }
    flush(&mut out, headings, &mut body);
    out
}

fn flush(out: &mut Vec<String>, headings: &[String], body: &mut String) {
    if nova_proto::knowledge::tokens(body).next().is_none() {
        body.clear();
        return;
    }
    let trail = trail(headings);
    let text = if trail.is_empty() { std::mem::take(body) } else { format!("{trail}\n{body}") };
    body.clear();
    out.push(text);
}

/// The headings joined by " > ", each cut to [`MAX_HEADING_BYTES`], the outermost dropped
/// until the trail fits [`MAX_TRAIL_BYTES`]: the innermost heading says most about the text.
fn trail(headings: &[String]) -> String {
    let parts: Vec<&str> = headings
        .iter()
        .map(|h| prefix_utf8(h.trim(), MAX_HEADING_BYTES))
        .filter(|h| !h.is_empty())
        .collect();
    for skip in 0..parts.len() {
        let t = parts[skip..].join(" > ");
        if t.len() <= MAX_TRAIL_BYTES {
            return t;
        }
    }
    String::new()
}

/// Cuts `text` (whitespace already collapsed) into pieces of at most [`MAX_CHUNK_BYTES`].
fn split(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > MAX_CHUNK_BYTES {
        let window = prefix_utf8(rest, MAX_CHUNK_BYTES);
        // Cut no earlier than halfway, so no piece is a sliver.
        let half = MAX_CHUNK_BYTES / 2;
        let sentence = window
            .rmatch_indices(['.', '!', '?', '。', '！', '？'])
            .map(|(i, m)| i + m.len())
            // A full stop is a sentence end before a space ("3.5" is not); CJK stops need none.
            .find(|&end| {
                end >= half
                    && (rest[end..].starts_with(' ') || !rest[..end].ends_with(['.', '!', '?']))
            });
        let word = window.rfind(' ').filter(|&i| i >= half);
        let end = sentence.or(word).unwrap_or(window.len());
        out.push(rest[..end].trim_end());
        rest = rest[end..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_at_blank_lines_and_small_paragraphs_merge() {
        let src = "First   para\nstill first.\n\n\nSecond.\n  \nThird.";
        assert_eq!(chunks(Kind::Text, src), ["First para still first. Second. Third."]);
        let big = format!("{}\n\n{}", "a ".repeat(300), "b ".repeat(300));
        let c = chunks(Kind::Text, &big);
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c[0].starts_with("a a") && c[1].starts_with("b b"));
    }

    #[test]
    fn long_paragraphs_split_at_sentences_then_words_then_anywhere() {
        let sentence = "This sentence has exactly forty-four bytes. ";
        let text = sentence.repeat(60);
        let c = chunks(Kind::Text, &text);
        assert!(c.len() >= 2);
        for piece in &c {
            assert!(piece.len() <= MAX_CHUNK_BYTES, "{}", piece.len());
            assert!(piece.ends_with('.'), "{piece:?}");
        }
        assert_eq!(c.concat().matches("forty-four").count(), 60);

        let words = "word ".repeat(1000);
        assert!(chunks(Kind::Text, &words)
            .iter()
            .all(|p| p.len() <= MAX_CHUNK_BYTES && p.split(' ').all(|w| w == "word")));

        // No spaces, multi-byte characters: cut on character boundaries, nothing lost.
        let cjk = "文字。".repeat(700);
        let c = chunks(Kind::Text, &cjk);
        assert!(c.iter().all(|p| p.len() <= MAX_CHUNK_BYTES && p.ends_with('。')));
        assert_eq!(c.concat(), cjk);
    }

    #[test]
    fn trails_keep_the_innermost_headings() {
        let h = |n: usize| -> Vec<String> {
            (0..n).map(|i| format!("Heading {i} {}", "x".repeat(90))).collect()
        };
        let t = trail(&h(6));
        assert!(t.len() <= MAX_TRAIL_BYTES && t.contains("Heading 5") && !t.contains("Heading 0"));
        assert_eq!(trail(&["A".into(), " ".into(), "B".into()]), "A > B");
        let blocks = vec![
            Block { headings: vec!["A".into()], text: "one".into() },
            Block { headings: vec!["A".into(), "B".into()], text: "two".into() },
            Block { headings: vec!["A".into(), "B".into()], text: "three".into() },
            Block { headings: vec!["C".into()], text: "—".into() },
        ];
        assert_eq!(assemble(&blocks), ["A\none", "A > B\ntwo three"]);
    }
}
