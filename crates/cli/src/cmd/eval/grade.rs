//! Grading one answer against an item's accepted forms.
//!
//! Written apart from the router's vote normaliser on purpose: if both shared one normaliser,
//! a quirk in it would make `vote` look right by the very rule that picked its answer.

/// Whether `answer` gives one of the `accepted` forms.
///
/// Both sides are normalised alike (lower case, markdown and punctuation dropped, `1,000` read
/// as `1000`, `42.0` as `42`, number words such as `twenty-one` as digits) and split into
/// tokens. The answer is correct when its tokens equal an accepted form's, or when an accepted
/// form's tokens appear, as a whole run, in the answer's first sentence of its first line: a
/// model that claims something else first and names the right answer later has not given it,
/// and `42` inside `420` is not `42`.
pub(crate) fn correct(answer: &str, accepted: &[String]) -> bool {
    let whole = tokens(answer);
    let first = tokens(first_sentence(answer));
    accepted
        .iter()
        .map(|a| tokens(a))
        .filter(|a| !a.is_empty())
        .any(|a| a == whole || first.windows(a.len()).any(|w| w == a.as_slice()))
}

/// The first sentence of the first line that says anything.
fn first_sentence(text: &str) -> &str {
    let line = text.lines().find(|l| l.chars().any(char::is_alphanumeric)).unwrap_or("");
    // A sentence ends at `.`, `!` or `?` followed by a space or the end; `3.5` and `e.g.x` do not
    // end one.
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|(_, n)| n.is_whitespace()) {
            return &line[..i];
        }
    }
    line
}

/// Normalised tokens: runs of letters, or of digits (with one decimal point), lower-cased, with
/// numbers in canonical digits.
fn tokens(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().map(ascii_digit).collect();
    let mut raw: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            let mut t = String::new();
            let mut dot = false;
            while i < chars.len() {
                let c = chars[i];
                let next_digit = chars.get(i + 1).is_some_and(char::is_ascii_digit);
                if c.is_ascii_digit() {
                    t.push(c);
                } else if c == ',' && thousands_group(&chars[i + 1..]) && !dot {
                    // `1,000`: a digit group separator, not a list comma.
                } else if c == '.' && !dot && next_digit {
                    dot = true;
                    t.push(c);
                } else {
                    break;
                }
                i += 1;
            }
            raw.push(canonical_number(&t));
        } else if c.is_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_alphabetic() {
                i += 1;
            }
            raw.push(chars[start..i].iter().collect::<String>().to_lowercase());
        } else {
            i += 1;
        }
    }
    number_words(raw)
}

/// Subscript and full-width digits as ASCII, so `H₂O` reads as `H2O`.
fn ascii_digit(c: char) -> char {
    match c {
        '₀'..='₉' => char::from_u32(c as u32 - '₀' as u32 + '0' as u32).unwrap_or(c),
        '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
        _ => c,
    }
}

/// Whether `rest` (after a comma) starts with exactly three digits.
fn thousands_group(rest: &[char]) -> bool {
    rest.len() >= 3
        && rest[..3].iter().all(char::is_ascii_digit)
        && !rest.get(3).is_some_and(char::is_ascii_digit)
}

/// `042` → `42`, `42.0` → `42`, `2.50` → `2.5`.
fn canonical_number(t: &str) -> String {
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Word {
    /// zero to nineteen.
    Small(u64),
    /// twenty, thirty, .. ninety.
    Tens(u64),
    Hundred,
    Thousand,
}

fn word(t: &str) -> Option<Word> {
    const SMALL: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 8] =
        ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];
    if let Some(i) = SMALL.iter().position(|w| *w == t) {
        return Some(Word::Small(i as u64));
    }
    if let Some(i) = TENS.iter().position(|w| *w == t) {
        return Some(Word::Tens(20 + 10 * i as u64));
    }
    match t {
        "hundred" => Some(Word::Hundred),
        "thousand" => Some(Word::Thousand),
        _ => None,
    }
}

/// Replaces runs of number words by their value: `one hundred and eighteen` → `118`,
/// `twenty-one` → `21`. Reading a run as one number matters: taken word by word, `twenty-one`
/// would contain `20`.
fn number_words(raw: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut run = NumberRun::default();
    let mut i = 0;
    while i < raw.len() {
        let t = &raw[i];
        if let Some(w) = word(t) {
            if !run.push(w) {
                out.extend(run.take());
                if !run.push(w) {
                    // `hundred` with nothing before it: a word, not a number.
                    out.push(t.clone());
                }
            }
        } else if t == "and"
            && run.after_scale()
            && raw
                .get(i + 1)
                .and_then(|n| word(n))
                .is_some_and(|w| !matches!(w, Word::Hundred | Word::Thousand))
        {
            // `hundred and eighteen`: part of the number.
        } else {
            out.extend(run.take());
            out.push(t.clone());
        }
        i += 1;
    }
    out.extend(run.take());
    out
}

/// A number being read from words.
#[derive(Default)]
struct NumberRun {
    total: u64,
    current: u64,
    last: Option<Word>,
    /// A tens word already took its unit (`twenty-one`).
    tens_done: bool,
}

impl NumberRun {
    /// Adds `w` if it continues the number; false if it starts a new one.
    fn push(&mut self, w: Word) -> bool {
        let fits = match (self.last, w) {
            (None, Word::Small(_) | Word::Tens(_)) => true,
            (None, _) => false,
            (Some(Word::Tens(_)), Word::Small(v)) => (1..=9).contains(&v) && !self.tens_done,
            (Some(Word::Hundred | Word::Thousand), Word::Small(_) | Word::Tens(_)) => true,
            (Some(Word::Small(v)), Word::Hundred) => v > 0 && self.current < 100,
            (Some(Word::Small(v)), Word::Thousand) => v > 0 && self.total == 0,
            (Some(Word::Tens(_)), Word::Thousand) => self.total == 0,
            (Some(Word::Hundred), Word::Thousand) => self.total == 0,
            _ => false,
        };
        if !fits {
            return false;
        }
        match w {
            Word::Small(v) => {
                self.tens_done = matches!(self.last, Some(Word::Tens(_)));
                self.current += v;
            }
            Word::Tens(v) => {
                self.tens_done = false;
                self.current += v;
            }
            Word::Hundred => self.current *= 100,
            Word::Thousand => {
                self.total += self.current * 1000;
                self.current = 0;
            }
        }
        self.last = Some(w);
        true
    }

    fn after_scale(&self) -> bool {
        matches!(self.last, Some(Word::Hundred | Word::Thousand))
    }

    /// The number read so far, if any, and a fresh run.
    fn take(&mut self) -> Option<String> {
        let run = std::mem::take(self);
        run.last.map(|_| (run.total + run.current).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(answer: &str, accepted: &[&str]) -> bool {
        correct(answer, &accepted.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn plain_and_decorated_answers() {
        assert!(ok("42", &["42"]));
        assert!(ok("  **42**.  ", &["42"]));
        assert!(ok("\"Paris\"", &["Paris"]));
        assert!(ok("The capital of France is Paris.", &["Paris"]));
        assert!(ok("PARIS", &["Paris"]));
        assert!(ok("Answer: `H2O`", &["H2O"]));
        assert!(ok("H₂O", &["H2O"]));
        assert!(ok("Brasília", &["Brasília", "Brasilia"]));
        assert!(ok("It is New Delhi.", &["New Delhi"]));
        assert!(!ok("Delhi", &["New Delhi"]));
    }

    #[test]
    fn numbers_are_compared_as_numbers() {
        assert!(ok("1,000", &["1000"]));
        assert!(ok("There are 5,000 metres in 5 km.", &["5000"]));
        assert!(ok("42.0", &["42"]));
        assert!(ok("2.50", &["2.5"]));
        assert!(ok("Twelve.", &["12"]));
        assert!(ok("twenty-one", &["21"]));
        assert!(ok("one hundred and eighteen", &["118"]));
        assert!(ok("7", &["seven"]));
        assert!(ok("hundreds of them", &["hundreds"]));
        assert!(ok("a hundred", &["a hundred"]));
        assert!(ok("100°C", &["100"]));
        assert!(ok("5000m", &["5000"]));
        // A list comma is not a digit-group separator.
        assert!(!ok("3,4", &["34"]));
    }

    #[test]
    fn a_number_inside_a_bigger_one_is_not_that_number() {
        assert!(!ok("420", &["42"]));
        assert!(!ok("The answer is 1420.", &["42"]));
        assert!(!ok("4.2", &["42"]));
        assert!(!ok("42.5", &["42"]));
        assert!(!ok("twenty-one", &["20"]));
        assert!(!ok("one hundred and eighteen", &["100"]));
        assert!(!ok("Parisian", &["Paris"]));
    }

    #[test]
    fn only_the_first_sentence_of_the_first_line_counts() {
        assert!(!ok("The capital is Lyon. Some say Paris.", &["Paris"]));
        assert!(!ok("Lyon\nParis", &["Paris"]));
        assert!(!ok("It is 41! Or maybe 42.", &["42"]));
        assert!(ok("\n\nParis\nLyon is bigger? no.", &["Paris"]));
        // A decimal point does not end the sentence.
        assert!(ok("It is 9.8 m/s².", &["9.8"]));
        // An accepted form spanning a full stop still matches the whole answer.
        assert!(ok("Mt. Everest", &["Mt. Everest"]));
    }

    #[test]
    fn empty_forms_match_nothing() {
        assert!(!ok("", &["42"]));
        assert!(!ok("anything", &[""]));
        assert!(!ok("...", &["..."]));
    }
}
