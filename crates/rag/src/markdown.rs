//! Markdown into paragraphs under their headings: ATX (`# …`) and setext (`===`, `---`)
//! headings, blank-line paragraphs, fenced code kept whole. Inline markup is left in: the
//! tokenizer drops its punctuation anyway, and the reader of a snippet understands it.

use crate::chunk::{collapse, Block};

/// The paragraphs of `src` with their heading trails.
pub(crate) fn blocks(src: &str) -> Vec<Block> {
    let mut p = Parser::default();
    let mut lines = src.lines().peekable();
    // YAML front matter is a paragraph like any other (its title and tags are worth finding),
    // but its closing `---` must not make it a setext heading.
    if lines.peek().is_some_and(|l| l.trim_end() == "---") {
        lines.next();
        for line in lines.by_ref() {
            if matches!(line.trim_end(), "---" | "...") {
                break;
            }
            p.para.push(line);
        }
        p.flush();
    }
    let mut fence: Option<&str> = None;
    for line in lines {
        let trimmed = line.trim_start();
        if let Some(f) = fence {
            if trimmed.starts_with(f) && trimmed.trim_end().chars().all(|c| f.starts_with(c)) {
                fence = None;
                p.flush();
            } else {
                p.para.push(line);
            }
            continue;
        }
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            p.flush();
            fence = Some(&trimmed[..3]);
            continue;
        }
        if let Some((level, text)) = atx(line) {
            p.flush();
            p.heading(level, text);
            continue;
        }
        if line.trim().is_empty() {
            p.flush();
            continue;
        }
        if !p.para.is_empty() && line.len() - trimmed.len() < 4 {
            let t = trimmed.trim_end();
            if t.len() >= 2 && t.bytes().all(|b| b == b'=') {
                p.setext(1);
                continue;
            }
            if t.len() >= 2 && t.bytes().all(|b| b == b'-') {
                p.setext(2);
                continue;
            }
        }
        p.para.push(line);
    }
    p.flush();
    p.out
}

/// `# Title ##` → `(1, "Title")`: up to three spaces of indent, one to six `#`, then a space
/// or the end of the line.
fn atx(line: &str) -> Option<(usize, &str)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let level = rest.bytes().take_while(|&b| b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let text = &rest[level..];
    if !(text.is_empty() || text.starts_with([' ', '\t'])) {
        return None;
    }
    Some((level, text.trim().trim_end_matches('#').trim_end()))
}

#[derive(Default)]
struct Parser<'a> {
    /// Open headings: (level, text), outermost first.
    stack: Vec<(usize, String)>,
    para: Vec<&'a str>,
    out: Vec<Block>,
}

impl<'a> Parser<'a> {
    fn flush(&mut self) {
        if self.para.is_empty() {
            return;
        }
        let text = collapse(&self.para.join(" "));
        self.para.clear();
        if !text.is_empty() {
            let headings = self.stack.iter().map(|(_, h)| h.clone()).collect();
            self.out.push(Block { headings, text });
        }
    }

    fn heading(&mut self, level: usize, text: &str) {
        while self.stack.last().is_some_and(|(l, _)| *l >= level) {
            self.stack.pop();
        }
        self.stack.push((level, collapse(text)));
    }

    /// The paragraph so far was a setext heading's text.
    fn setext(&mut self, level: usize) {
        let text = self.para.join(" ");
        self.para.clear();
        self.heading(level, &text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{chunk::chunks, walk::Kind};

    fn b(headings: &[&str], text: &str) -> Block {
        Block { headings: headings.iter().map(|h| h.to_string()).collect(), text: text.into() }
    }

    #[test]
    fn headings_nest_and_paragraphs_sit_under_them() {
        let src = "intro\n\n# Top #\n\nUnder top.\n\n## Sub\nline one\nline two\n\n\
                   ### Deep\n\ndeep\n## Sub2\n\nsecond\n# Other\n\nthird\n#hashtag not heading";
        assert_eq!(
            blocks(src),
            vec![
                b(&[], "intro"),
                b(&["Top"], "Under top."),
                b(&["Top", "Sub"], "line one line two"),
                b(&["Top", "Sub", "Deep"], "deep"),
                b(&["Top", "Sub2"], "second"),
                b(&["Other"], "third #hashtag not heading"),
            ]
        );
    }

    #[test]
    fn setext_fences_and_front_matter() {
        let src = "---\ntitle: Recipes\n---\nBig Title\n=========\n\ntext\n\nSmall\n---\n\n\
                   ```sh\n# not a heading\n```\n\nafter";
        assert_eq!(
            blocks(src),
            vec![
                b(&[], "title: Recipes"),
                b(&["Big Title"], "text"),
                b(&["Big Title", "Small"], "# not a heading"),
                b(&["Big Title", "Small"], "after"),
            ]
        );
    }

    #[test]
    fn chunks_start_with_their_trail() {
        let src = "# Guide\n\n## Install\n\nRun the installer.\n\n## Use\n\nAsk a question.";
        assert_eq!(
            chunks(Kind::Markdown, src),
            ["Guide > Install\nRun the installer.", "Guide > Use\nAsk a question."]
        );
    }
}
