//! HTML into paragraphs under their headings. Not a full HTML parser: tags are dropped
//! (script, style and similar with their content), block-level tags end a paragraph, `h1`–`h6`
//! open a section, and the common character references are decoded. Malformed markup degrades
//! to text, never to an error.

use crate::chunk::{collapse, Block};

/// Elements whose content is not text for a reader.
const DROPPED: &[&str] = &["script", "style", "noscript", "template", "svg", "object", "iframe"];

/// Elements that end a paragraph where they open or close.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "br",
    "caption",
    "dd",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "td",
    "th",
    "title",
    "tr",
    "ul",
];

/// The paragraphs of `src` with their heading trails.
pub(crate) fn blocks(src: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut para = String::new();
    // Set while inside `<hN>`: its level and text so far.
    let mut heading: Option<(usize, String)> = None;
    let mut rest = src;
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        match &mut heading {
            Some((_, h)) => decode_into(text, h),
            None => decode_into(text, &mut para),
        }
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |i| &after[i + 3..]);
            continue;
        }
        let Some(tag) = Tag::parse(rest) else {
            // A `<` that starts no tag ("a < b") is text.
            match &mut heading {
                Some((_, h)) => h.push('<'),
                None => para.push('<'),
            }
            rest = &rest[1..];
            continue;
        };
        rest = &rest[tag.len..];
        if !tag.closing && !tag.self_closing && DROPPED.contains(&tag.name.as_str()) {
            rest = skip_element(rest, &tag.name);
            continue;
        }
        if let Some(level) = heading_level(&tag.name) {
            flush(&mut out, &stack, &mut para);
            if tag.closing {
                if let Some((level, text)) = heading.take() {
                    while stack.last().is_some_and(|(l, _)| *l >= level) {
                        stack.pop();
                    }
                    stack.push((level, collapse(&text)));
                }
            } else {
                heading = Some((level, String::new()));
            }
        } else if BLOCKS.contains(&tag.name.as_str()) {
            match &mut heading {
                Some((_, h)) => h.push(' '),
                None => flush(&mut out, &stack, &mut para),
            }
        }
    }
    decode_into(rest, &mut para);
    // A heading never closed was text after all.
    if let Some((_, h)) = heading {
        para.insert_str(0, &h);
    }
    flush(&mut out, &stack, &mut para);
    out
}

fn flush(out: &mut Vec<Block>, stack: &[(usize, String)], para: &mut String) {
    let text = collapse(para);
    para.clear();
    if !text.is_empty() {
        out.push(Block { headings: stack.iter().map(|(_, h)| h.clone()).collect(), text });
    }
}

fn heading_level(name: &str) -> Option<usize> {
    match name.as_bytes() {
        [b'h', d @ b'1'..=b'6'] => Some(usize::from(d - b'0')),
        _ => None,
    }
}

/// Skips past `</name…>` (any case), or to the end if it never closes, as browsers do.
fn skip_element<'a>(s: &'a str, name: &str) -> &'a str {
    let lower = s.to_ascii_lowercase();
    let close = format!("</{name}");
    match lower.find(&close) {
        Some(i) => {
            let after = &s[i + close.len()..];
            after.find('>').map_or("", |j| &after[j + 1..])
        }
        None => "",
    }
}

/// A tag at the start of the input.
struct Tag {
    /// Lowercased element name.
    name: String,
    closing: bool,
    self_closing: bool,
    /// Bytes from `<` to `>` included.
    len: usize,
}

impl Tag {
    /// Parses `<name attrs…>` or `</name>` (also `<!DOCTYPE …>` and `<?…?>`, with an empty
    /// name), skipping quoted attribute values that may hold a `>`. `None` when the `<` does
    /// not start a tag.
    fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let mut i = 1;
        let closing = b.get(i) == Some(&b'/');
        if closing {
            i += 1;
        }
        let start = i;
        match b.get(i) {
            Some(c) if c.is_ascii_alphabetic() => {}
            Some(b'!' | b'?') if !closing => {
                let end = s.find('>')?;
                return Some(Self {
                    name: String::new(),
                    closing,
                    self_closing: true,
                    len: end + 1,
                });
            }
            _ => return None,
        }
        while b.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'-') {
            i += 1;
        }
        let name = s[start..i].to_ascii_lowercase();
        let mut quote: Option<u8> = None;
        while let Some(&c) = b.get(i) {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == b'"' || c == b'\'' => quote = Some(c),
                None if c == b'>' => {
                    let self_closing = i > 0 && b[i - 1] == b'/';
                    return Some(Self { name, closing, self_closing, len: i + 1 });
                }
                None => {}
            }
            i += 1;
        }
        // Never closed: the rest of the document is this tag.
        Some(Self { name, closing, self_closing: true, len: s.len() })
    }
}

/// Appends `text` with character references decoded.
fn decode_into(text: &str, out: &mut String) {
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let semi = rest.bytes().take(12).position(|b| b == b';');
        let decoded = semi.and_then(|end| entity(&rest[1..end]).map(|c| (c, end + 1)));
        match decoded {
            Some((c, used)) => {
                out.push(c);
                rest = &rest[used..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
}

/// The character of a reference's name (`amp`, `#233`, `#xE9`), for the common ones.
fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code).filter(|&c| c != '\0');
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "laquo" => '«',
        "raquo" => '»',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "deg" => '°',
        "euro" => '€',
        "pound" => '£',
        "times" => '×',
        "middot" => '·',
        "bull" => '•',
        "eacute" => 'é',
        "egrave" => 'è',
        "agrave" => 'à',
        "ccedil" => 'ç',
        "uuml" => 'ü',
        "ouml" => 'ö',
        "auml" => 'ä',
        "szlig" => 'ß',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{chunk::chunks, walk::Kind};

    fn b(headings: &[&str], text: &str) -> Block {
        Block { headings: headings.iter().map(|h| h.to_string()).collect(), text: text.into() }
    }

    #[test]
    fn tags_go_scripts_vanish_headings_nest() {
        let src = r#"<!DOCTYPE html><html><head><title>T</title>
            <style>p { color: red }</style><script>if (a < b) { x = "</p>" }</script></head>
            <body><!-- note <p>hidden</p> --><h1 class="x>y">Main &amp; <b>only</b></h1>
            <p>Caf&eacute; at 5 &lt; 6 &#8212; &#x41;&nbsp;ok &bogus; &amp</p>
            <div>a<span>b</span>c<br>d</div><h2>Sub</h2><ul><li>one</li><li>two</li></ul>
            <h3>Deep</h3><p>deep</p><h2>Sub2</h2><p>x<SCRIPT>evil()</SCRIPT>y</p>"#;
        assert_eq!(
            blocks(src),
            vec![
                b(&[], "T"),
                b(&["Main & only"], "Café at 5 < 6 — A ok &bogus; &amp"),
                b(&["Main & only"], "abc"),
                b(&["Main & only"], "d"),
                b(&["Main & only", "Sub"], "one"),
                b(&["Main & only", "Sub"], "two"),
                b(&["Main & only", "Sub", "Deep"], "deep"),
                b(&["Main & only", "Sub2"], "xy"),
            ]
        );
    }

    #[test]
    fn malformed_markup_degrades_to_text() {
        assert_eq!(blocks("a < b and c>d <p"), vec![b(&[], "a < b and c>d")]);
        assert_eq!(blocks("<h1>never closed <p>x"), vec![b(&[], "never closed x")]);
        assert_eq!(blocks("x<script>unterminated"), vec![b(&[], "x")]);
        assert_eq!(blocks("é&#0;&#xFFFFFFFF;"), vec![b(&[], "é&#0;&#xFFFFFFFF;")]);
    }

    #[test]
    fn chunks_carry_html_headings() {
        let src = "<h1>Guide</h1><h2>Install</h2><p>Run it.</p><h2>Use</h2><p>Ask.</p>";
        assert_eq!(chunks(Kind::Html, src), ["Guide > Install\nRun it.", "Guide > Use\nAsk."]);
    }
}
