//! Answer-level voting (self-consistency): reduce each answer to its final claim, cluster equal
//! claims, and pick from the largest cluster.
//!
//! Small models wrap the same claim in different words ("Paris.", "The capital of France is
//! Paris", "**Paris** is the capital"), so comparing whole texts would split every vote. The
//! normaliser keeps only what a short, checkable answer turns on: the number (units dropped: a
//! question fixes its unit, and "2000 m" and "2000" are the same claim) or, failing that, a
//! few content words after filler is stripped.

use std::collections::{HashMap, HashSet};

/// Longest claim key kept, in words: enough for "new york city" or "carbon dioxide".
const MAX_CLAIM_WORDS: usize = 4;

/// Number words a small model writes instead of digits.
const NUMBER_WORDS: [&str; 21] = [
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
    "twenty",
];

/// Phrases after which the claim follows ("... so the answer is 42").
const MARKERS: [&str; 6] = ["answer is", "answer:", "result is", "equals", " = ", "therefore"];

/// Words that carry no claim.
const FILLER: [&str; 22] = [
    "the",
    "a",
    "an",
    "is",
    "are",
    "was",
    "it",
    "its",
    "it's",
    "of",
    "answer",
    "final",
    "so",
    "about",
    "approximately",
    "exactly",
    "just",
    "that",
    "this",
    "which",
    "called",
    "known",
];

/// Longest question read for its words; a longer prompt's tail is ignored (bounded work).
const MAX_QUESTION_BYTES: usize = 16 * 1024;

/// What the question already says: its words and numbers are not part of a claim ("Paris is
/// the capital of France" and "The capital of France is Paris" both claim "paris").
#[derive(Debug, Clone, Default)]
pub struct Question {
    words: HashSet<String>,
}

impl Question {
    /// The words of `prompt` (its first [`MAX_QUESTION_BYTES`]).
    pub fn new(prompt: &str) -> Self {
        let prompt = nova_proto::knowledge::prefix_utf8(prompt, MAX_QUESTION_BYTES);
        Self { words: words(&prompt.to_lowercase()).map(str::to_string).collect() }
    }

    /// The final claim of `answer`, as a key that equal claims share. Empty when there is
    /// none (an empty or punctuation-only answer), and such answers never form a cluster.
    pub fn claim(&self, answer: &str) -> String {
        let lower = answer.to_lowercase();
        // Where a marker says "here is the answer", the claim follows its last occurrence;
        // otherwise a short answer states it in its first sentence.
        let tail = MARKERS
            .iter()
            .filter_map(|m| lower.rfind(m).map(|i| i + m.len()))
            .max()
            .map_or(lower.as_str(), |i| &lower[i..]);
        let sentence = first_sentence(tail);
        let numbers = numbers(sentence);
        // "17 + 25 is 42": the first number the question did not already give.
        if let Some(n) = numbers.iter().find(|n| !self.words.contains(*n)).or(numbers.first()) {
            return clip(n);
        }
        let all: Vec<&str> = words(sentence).collect();
        let is_content = |w: &&&str| !FILLER.contains(*w) && !self.words.contains(**w);
        // "the formula of water is h2o": what follows the last copula is the claim, unless the
        // question's own words are all it has ("paris is the capital of france").
        let copula = all.iter().rposition(|w| matches!(*w, "is" | "are" | "was" | "were"));
        let after: Vec<&str> = copula
            .map(|i| all[i + 1..].iter().filter(is_content).copied().collect())
            .unwrap_or_default();
        let content: Vec<&str> =
            if after.is_empty() { all.iter().filter(is_content).copied().collect() } else { after };
        // An answer that only repeats the question's words claims those words.
        let kept = if content.is_empty() {
            words(sentence).filter(|w| !FILLER.contains(w)).take(MAX_CLAIM_WORDS).collect()
        } else {
            content.into_iter().take(MAX_CLAIM_WORDS).collect::<Vec<_>>()
        };
        clip(&kept.join(" "))
    }
}

/// Longest claim key, in characters: a trace carries one per answer, so a 4,000-character
/// "word" must not make it large.
const MAX_CLAIM_CHARS: usize = 64;

fn clip(claim: &str) -> String {
    claim.chars().take(MAX_CLAIM_CHARS).collect()
}

/// [`Question::claim`] for an answer to an unknown question.
pub fn claim(answer: &str) -> String {
    Question::default().claim(answer)
}

/// Up to the first sentence end (". " / newline / "!" / "?"), skipping leading blank lines. A
/// period inside a number ("3.5") does not end it.
fn first_sentence(text: &str) -> &str {
    let text = text.trim_start_matches(|c: char| c.is_whitespace() || c == ':' || c == '*');
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let ends = match b {
            b'\n' | b'!' | b'?' => true,
            b'.' => !bytes.get(i + 1).is_some_and(u8::is_ascii_digit),
            _ => false,
        };
        if ends && i > 0 {
            return &text[..i];
        }
    }
    text
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'')).filter(|w| !w.is_empty())
}

/// The numbers in `text`, in order, canonical: no thousands separators, no trailing ".0", a
/// leading minus kept; number words up to twenty as digits. Digits inside a word ("h2o",
/// "co2") are not numbers.
fn numbers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for w in text
        .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '=' | '+' | '*' | '/' | ':'))
    {
        let w = w
            .trim_matches(|c: char| matches!(c, '.' | ',' | ';' | '!' | '?' | '"' | '\'' | '*'))
            .trim_start_matches(['$', '€', '£']);
        if let Some(v) = NUMBER_WORDS.iter().position(|n| *n == w) {
            out.push(v.to_string());
            continue;
        }
        let (negative, digits) = match w.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, w),
        };
        let bytes = digits.as_bytes();
        if !bytes.first().is_some_and(u8::is_ascii_digit) {
            continue;
        }
        let mut end = 0;
        while end < bytes.len()
            && (bytes[end].is_ascii_digit()
                || (matches!(bytes[end], b',' | b'.')
                    && bytes.get(end + 1).is_some_and(u8::is_ascii_digit)))
        {
            end += 1;
        }
        // "2000m" and "2nd" are numbers with a unit or suffix; "2b3" is not a number.
        if digits[end..].chars().any(|c| c.is_ascii_digit()) {
            continue;
        }
        let mut n: String = digits[..end].chars().filter(|c| *c != ',').collect();
        if n.contains('.') {
            n = n.trim_end_matches('0').trim_end_matches('.').to_string();
        }
        out.push(if negative && n != "0" { format!("-{n}") } else { n });
    }
    out
}

/// Answers with the same claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// The shared claim.
    pub claim: String,
    /// Indices of the answers, in input order.
    pub members: Vec<usize>,
}

/// Groups `answers` by claim, largest cluster first (ties: the cluster whose first member came
/// first). Answers without a claim are left out.
pub fn clusters<S: AsRef<str>>(question: &Question, answers: &[S]) -> Vec<Cluster> {
    let mut by_claim: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Cluster> = Vec::new();
    for (i, a) in answers.iter().enumerate() {
        let c = question.claim(a.as_ref());
        if c.is_empty() {
            continue;
        }
        match by_claim.get(&c) {
            Some(&k) => out[k].members.push(i),
            None => {
                by_claim.insert(c.clone(), out.len());
                out.push(Cluster { claim: c, members: vec![i] });
            }
        }
    }
    // Stable: equal sizes keep first-seen order.
    out.sort_by_key(|c| std::cmp::Reverse(c.members.len()));
    out
}

/// The vote's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The answer returned.
    pub winner: usize,
    /// The winning claim ("" when no answer had one and the reranker alone decided).
    pub claim: String,
    /// Share of all answers in the winning cluster, 0..=1.
    pub agreement: f64,
    /// Distinct claims among the answers.
    pub distinct: usize,
}

/// Picks an answer: the largest cluster wins; among clusters of equal size, and among the
/// members of the winning cluster, the highest `scores` (the reranker's) win. With no claims at
/// all, the best-scored answer wins with agreement 0. `None` only for no answers.
pub fn vote<S: AsRef<str>>(question: &Question, answers: &[S], scores: &[f64]) -> Option<Verdict> {
    if answers.is_empty() {
        return None;
    }
    let score = |i: usize| scores.get(i).copied().unwrap_or(0.0);
    let best_of = |members: &[usize]| {
        members.iter().copied().fold(None, |best: Option<usize>, i| match best {
            Some(b) if score(b) >= score(i) => Some(b),
            _ => Some(i),
        })
    };
    let cs = clusters(question, answers);
    let Some(top) = cs.first().map(|c| c.members.len()) else {
        let all: Vec<usize> = (0..answers.len()).collect();
        let winner = best_of(&all)?;
        return Some(Verdict { winner, claim: String::new(), agreement: 0.0, distinct: 0 });
    };
    let tied: Vec<&Cluster> = cs.iter().take_while(|c| c.members.len() == top).collect();
    let (cluster, winner) = tied.iter().filter_map(|c| best_of(&c.members).map(|w| (*c, w))).fold(
        None,
        |best: Option<(&Cluster, usize)>, (c, w)| match best {
            Some((bc, bw)) if score(bw) >= score(w) => Some((bc, bw)),
            _ => Some((c, w)),
        },
    )?;
    Some(Verdict {
        winner,
        claim: cluster.claim.clone(),
        agreement: top as f64 / answers.len() as f64,
        distinct: cs.len(),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn equal_claims_in_different_words_share_a_key() {
        let q = Question::new("What is the capital of France?");
        for (a, b) in [
            ("Paris", "The capital of France is Paris."),
            ("Paris is the capital of France.", "**Paris**"),
            ("paris", "It's Paris!"),
        ] {
            assert_eq!(q.claim(a), q.claim(b), "{a:?} vs {b:?}");
            assert_eq!(q.claim(a), "paris");
        }
        let q = Question::new("What is 17 + 25? Answer with just the number.");
        for a in ["42", "17 + 25 = 42", "17 plus 25 is 42.", "The answer is 42", "**42**", "$42"] {
            assert_eq!(q.claim(a), "42", "{a:?}");
        }
        for (a, b) in [
            ("2,000 meters", "2000"),
            ("2000.0", "2000m"),
            ("twelve", "12 eggs"),
            ("3.5 hours", "It takes 3.5 hours. Then more text 7."),
            ("Let me think. 6 times 7... so the answer is 42", "42"),
            ("-5", "The temperature is -5 degrees"),
            ("H2O", "The chemical formula of water is H2O."),
        ] {
            assert_eq!(claim(a), claim(b), "{a:?} vs {b:?}");
            assert!(!claim(a).is_empty(), "{a:?}");
        }
    }

    #[test]
    fn different_claims_differ() {
        let q = Question::new("What is the capital of France?");
        for (a, b) in [
            ("42", "420"),
            ("Paris", "Lyon"),
            ("The capital of France is Paris", "The capital of France is Lyon"),
            ("3.5", "35"),
            ("5", "-5"),
            ("H2O", "CO2"),
            ("Mars", "Jupiter is the largest planet"),
        ] {
            assert_ne!(q.claim(a), q.claim(b), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn a_number_the_question_gave_is_still_a_claim_when_it_is_the_only_one() {
        let q = Question::new("What is 5 + 0?");
        assert_eq!(q.claim("5"), "5");
        assert_eq!(q.claim("5 + 0 = 5"), "5");
    }

    #[test]
    fn empty_answers_have_no_claim_and_no_cluster() {
        assert_eq!(claim(""), "");
        assert_eq!(claim("  ...  "), "");
        assert!(clusters(&Question::default(), &["", "!!"]).is_empty());
    }

    #[test]
    fn the_largest_cluster_wins_and_reports_its_share() {
        let q = Question::new("What is the capital of France?");
        let answers = ["Paris", "Lyon", "It is Paris.", "Marseille", "paris!"];
        let v = vote(&q, &answers, &[0.0; 5]).expect("verdict");
        assert_eq!(v.claim, "paris");
        assert_eq!(v.agreement, 3.0 / 5.0);
        assert_eq!(v.distinct, 3);
        assert_eq!(v.winner, 0);
    }

    #[test]
    fn the_reranker_breaks_ties_between_clusters_and_within_one() {
        let q = Question::default();
        let answers = ["Lyon", "Paris", "Paris.", "Lyon."];
        // Two clusters of two: the best-scored member anywhere decides.
        let v = vote(&q, &answers, &[0.1, 0.2, 0.9, 0.3]).expect("verdict");
        assert_eq!((v.winner, v.claim.as_str()), (2, "paris"));
        let answers = ["Paris", "Paris.", "Lyon"];
        let v = vote(&q, &answers, &[0.1, 0.5, 0.9]).expect("verdict");
        assert_eq!(v.winner, 1, "the better member of the larger cluster, not the best overall");
    }

    #[test]
    fn without_claims_the_reranker_decides() {
        let q = Question::default();
        let v = vote(&q, &["", "..."], &[0.2, 0.7]).expect("verdict");
        assert_eq!((v.winner, v.agreement, v.distinct), (1, 0.0, 0));
        assert!(vote::<&str>(&q, &[], &[]).is_none());
    }

    #[test]
    fn claims_are_short_whatever_the_answer() {
        assert_eq!(claim(&"x".repeat(10_000)).chars().count(), MAX_CLAIM_CHARS);
        assert_eq!(claim(&"9".repeat(10_000)).len(), MAX_CLAIM_CHARS);
    }

    #[test]
    fn a_huge_question_is_read_only_up_to_its_bound() {
        let q = Question::new(&"é".repeat(MAX_QUESTION_BYTES));
        assert!(q.words.iter().map(String::len).sum::<usize>() <= MAX_QUESTION_BYTES);
    }

    proptest! {
        #[test]
        fn the_winner_is_in_a_largest_cluster(
            answers in prop::collection::vec("[a-c0-2 .]{0,8}", 1..12),
            seed in any::<u64>(),
        ) {
            let q = Question::new("what is a?");
            let scores: Vec<f64> =
                (0..answers.len()).map(|i| ((seed >> (i % 60)) & 7) as f64).collect();
            let v = vote(&q, &answers, &scores).expect("non-empty");
            prop_assert!(v.winner < answers.len());
            let cs = clusters(&q, &answers);
            let members: usize = cs.iter().map(|c| c.members.len()).sum();
            prop_assert!(members <= answers.len());
            if let Some(top) = cs.first() {
                prop_assert_eq!(q.claim(&answers[v.winner]), v.claim.clone());
                prop_assert!(cs.iter().all(|c| c.members.len() <= top.members.len()));
                let size = cs.iter().find(|c| c.claim == v.claim).map(|c| c.members.len());
                prop_assert_eq!(size, Some(top.members.len()));
                let share = top.members.len() as f64 / answers.len() as f64;
                prop_assert!((v.agreement - share).abs() < 1e-12);
            } else {
                prop_assert_eq!(v.agreement, 0.0);
            }
        }

        #[test]
        fn claims_never_panic_and_stay_short(q in "\\PC{0,80}", a in "\\PC{0,200}") {
            let c = Question::new(&q).claim(&a);
            prop_assert!(c.split(' ').count() <= MAX_CLAIM_WORDS);
        }
    }
}
