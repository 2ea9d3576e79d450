//! A council's peer review: reading a member's ranking of anonymised answers and aggregating
//! the rankings by Borda count.
//!
//! Members see answers under letters, in an order shuffled per member, never their own, so a
//! ranking carries no node identity and no position bias shared by every member. A small
//! model's ranking is rarely well formed; the parser keeps the labels in the order they first
//! appear and the count treats the ones it left out as tied for the remaining places.

/// Labels for up to 26 answers.
pub const LABELS: &[u8; 26] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The label of answer slot `i` ("A", "B", ...). Panics past 26; councils are far smaller.
pub fn label(i: usize) -> char {
    char::from(LABELS[i])
}

/// The labels of `shown` (slots `0..shown`) that `text` names, in the order they first appear.
/// A label counts only as a token of its own ("B", "B.", "(B)", "Answer B"), so the "A" of
/// "A good answer" is not read when it starts a sentence followed by a lower-case word.
pub fn parse_ranking(text: &str, shown: usize) -> Vec<usize> {
    let shown = shown.min(LABELS.len());
    let mut out = Vec::new();
    let tokens: Vec<&str> =
        text.split(|c: char| !c.is_ascii_alphanumeric()).filter(|t| !t.is_empty()).collect();
    for (i, t) in tokens.iter().enumerate() {
        let &[b] = t.as_bytes() else { continue };
        let Some(slot) = LABELS[..shown].iter().position(|l| *l == b) else { continue };
        // "A" followed by a lower-case word is the article.
        let article = b == b'A'
            && tokens.get(i + 1).is_some_and(|n| n.starts_with(|c: char| c.is_ascii_lowercase()));
        if !article && !out.contains(&slot) {
            out.push(slot);
        }
    }
    out
}

/// One member's ranking: the candidates it was shown (indices into the council's answers),
/// and its order of them, best first, as indices into the same answers (a subset; unranked
/// ones share the places left).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ballot {
    /// The answers the member was shown.
    pub shown: Vec<usize>,
    /// Its order of them, best first.
    pub ranked: Vec<usize>,
}

/// Borda scores of `n` answers: on a ballot of `m` shown answers, place `p` (0-based) earns
/// `m - 1 - p` points and the unranked share the points of the places left equally. Each
/// answer's score is its mean over the ballots that showed it, so an answer is not penalised
/// for the ballot it could not appear on (its author's). Answers no ballot showed score 0.
pub fn borda(n: usize, ballots: &[Ballot]) -> Vec<f64> {
    let mut points = vec![0.0; n];
    let mut seen = vec![0u32; n];
    for b in ballots {
        let m = b.shown.len();
        let ranked: Vec<usize> = {
            let mut r = Vec::new();
            for &i in &b.ranked {
                if b.shown.contains(&i) && !r.contains(&i) {
                    r.push(i);
                }
            }
            r
        };
        for (p, &i) in ranked.iter().enumerate() {
            points[i] += (m - 1 - p) as f64;
        }
        let unranked: Vec<usize> =
            b.shown.iter().copied().filter(|i| !ranked.contains(i)).collect();
        if !unranked.is_empty() {
            // Places ranked.len()..m share their points: (m-1-r) + ... + 0 over the unranked.
            let left = (m - ranked.len()) as f64;
            let share = (left - 1.0) / 2.0;
            for &i in &unranked {
                points[i] += share;
            }
        }
        for &i in &b.shown {
            if i < n {
                seen[i] += 1;
            }
        }
    }
    points.iter().zip(&seen).map(|(p, s)| if *s == 0 { 0.0 } else { p / f64::from(*s) }).collect()
}

/// Indices of `scores`, best first; ties keep index order.
pub fn order(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    idx
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn rankings_are_read_from_what_small_models_write() {
        assert_eq!(parse_ranking("B, A, C", 3), vec![1, 0, 2]);
        assert_eq!(parse_ranking("1. Answer C\n2. Answer A\n3. Answer B", 3), vec![2, 0, 1]);
        assert_eq!(parse_ranking("The best is (B). Then A.", 3), vec![1, 0]);
        assert_eq!(parse_ranking("A good answer is C", 3), vec![2], "the article is not a label");
        assert_eq!(parse_ranking("D, B, E", 3), vec![1], "labels not shown are ignored");
        assert_eq!(parse_ranking("B B A B", 2), vec![1, 0]);
        assert!(parse_ranking("I cannot rank these.", 3).is_empty());
    }

    #[test]
    fn borda_counts_places_and_skips_authors() {
        // Three members, each shown the other two answers.
        let ballots = [
            Ballot { shown: vec![1, 2], ranked: vec![2, 1] },
            Ballot { shown: vec![0, 2], ranked: vec![2, 0] },
            Ballot { shown: vec![0, 1], ranked: vec![0, 1] },
        ];
        let s = borda(3, &ballots);
        assert_eq!(s, vec![0.5, 0.0, 1.0]);
        assert_eq!(order(&s), vec![2, 0, 1]);
    }

    #[test]
    fn unranked_answers_share_the_places_left() {
        let ballots = [Ballot { shown: vec![0, 1, 2, 3], ranked: vec![3] }];
        // 3 gets 3 points; 0, 1, 2 share 2 + 1 + 0.
        assert_eq!(borda(4, &ballots), vec![1.0, 1.0, 1.0, 3.0]);
        let empty = [Ballot { shown: vec![0, 1], ranked: vec![] }];
        assert_eq!(borda(2, &empty), vec![0.5, 0.5]);
        assert_eq!(borda(2, &[]), vec![0.0, 0.0]);
    }

    proptest! {
        #[test]
        fn each_ballot_hands_out_every_place_once(
            m in 1usize..8,
            perm in prop::collection::vec(0usize..8, 0..8),
        ) {
            let shown: Vec<usize> = (0..m).collect();
            let ranked: Vec<usize> = perm.into_iter().filter(|i| *i < m).collect();
            let s = borda(m, &[Ballot { shown, ranked }]);
            let total: f64 = s.iter().sum();
            prop_assert!((total - (m * (m - 1)) as f64 / 2.0).abs() < 1e-9);
            prop_assert!(s.iter().all(|x| *x >= 0.0 && *x <= (m - 1) as f64));
        }

        #[test]
        fn parsing_never_panics_and_names_shown_slots_once(text in "\\PC{0,120}", shown in 0usize..30) {
            let r = parse_ranking(&text, shown);
            prop_assert!(r.iter().all(|i| *i < shown.min(26)));
            let mut d = r.clone();
            d.dedup();
            prop_assert_eq!(d.len(), r.len());
        }
    }
}
