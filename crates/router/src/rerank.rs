//! Ranking candidate answers for best-of-n, without another model.
//!
//! The default [`RuleReranker`] combines cheap signals that catch what goes wrong with tiny
//! models: empty or very short answers, loops (repeated word trigrams), answers cut off by the
//! token limit, answers that ignore the question's words, and — the strongest signal in an
//! ensemble — disagreement with the other candidates (bag-of-words cosine similarity).

use std::collections::{HashMap, HashSet};

/// One answer to rank.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The worker that wrote it.
    pub worker: String,
    /// The answer.
    pub text: String,
    /// Whether it ended by itself (not cut off by the token limit).
    pub complete: bool,
}

/// Scores candidate answers to one prompt; higher is better.
pub trait Reranker: Send + Sync {
    /// One score per candidate, in order.
    fn scores(&self, prompt: &str, candidates: &[Candidate]) -> Vec<f64>;

    /// Index of the best candidate (the first among equals), or `None` when there are none.
    fn best(&self, prompt: &str, candidates: &[Candidate]) -> Option<usize> {
        let scores = self.scores(prompt, candidates);
        (0..scores.len()).fold(None, |best, i| match best {
            Some(b) if scores[b] >= scores[i] => Some(b),
            _ => Some(i),
        })
    }
}

/// Rule-based + bag-of-words reranker.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleReranker;

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Share of word trigrams that repeat an earlier one: 0 for fresh text, near 1 for a loop.
fn repetition(ws: &[String]) -> f64 {
    if ws.len() < 6 {
        return 0.0;
    }
    let mut seen = HashSet::new();
    let trigrams: Vec<_> = ws.windows(3).collect();
    let repeats = trigrams.iter().filter(|t| !seen.insert(**t)).count();
    repeats as f64 / trigrams.len() as f64
}

fn bag(ws: &[String]) -> HashMap<&str, f64> {
    let mut m = HashMap::new();
    for w in ws {
        *m.entry(w.as_str()).or_insert(0.0) += 1.0;
    }
    m
}

fn cosine(a: &HashMap<&str, f64>, b: &HashMap<&str, f64>) -> f64 {
    let dot: f64 = a.iter().filter_map(|(k, x)| b.get(k).map(|y| x * y)).sum();
    let na: f64 = a.values().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.values().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

impl Reranker for RuleReranker {
    fn scores(&self, prompt: &str, candidates: &[Candidate]) -> Vec<f64> {
        let prompt_words: HashSet<String> =
            words(prompt).into_iter().filter(|w| w.len() > 3).collect();
        let tokenized: Vec<Vec<String>> = candidates.iter().map(|c| words(&c.text)).collect();
        let bags: Vec<_> = tokenized.iter().map(|w| bag(w)).collect();
        candidates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let ws = &tokenized[i];
                if ws.is_empty() {
                    return 0.0;
                }
                let mut score = 1.0 - repetition(ws);
                if !c.complete {
                    score *= 0.8;
                }
                if ws.len() < 3 {
                    score *= 0.7;
                }
                if !prompt_words.is_empty() {
                    let hit =
                        prompt_words.iter().filter(|w| bags[i].contains_key(w.as_str())).count();
                    score += 0.3 * hit as f64 / prompt_words.len() as f64;
                }
                if candidates.len() > 1 {
                    let agreement: f64 = (0..candidates.len())
                        .filter(|&j| j != i)
                        .map(|j| cosine(&bags[i], &bags[j]))
                        .sum::<f64>()
                        / (candidates.len() - 1) as f64;
                    score += 0.5 * agreement;
                }
                score
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(worker: &str, text: &str, complete: bool) -> Candidate {
        Candidate { worker: worker.into(), text: text.into(), complete }
    }

    #[test]
    fn picks_the_consensus_over_the_odd_one_out() {
        let cands = [
            c("a", "The capital of France is Paris.", true),
            c("b", "Bananas are yellow and grow in bunches.", true),
            c("c", "Paris is the capital of France.", true),
        ];
        let best = RuleReranker.best("What is the capital of France?", &cands).unwrap();
        assert_ne!(cands[best].worker, "b");
    }

    #[test]
    fn loops_empty_and_cut_off_answers_lose() {
        let looped = "the cat sat on the mat ".repeat(10);
        let cands = [
            c("loop", &looped, true),
            c("empty", "", true),
            c("good", "A cat is a small domesticated mammal.", true),
            c("cut", "A cat is a small domesticated", false),
        ];
        let s = RuleReranker.scores("Tell me about a cat", &cands);
        assert_eq!(s[1], 0.0);
        assert!(s[2] > s[0] && s[2] > s[3], "{s:?}");
        assert_eq!(RuleReranker.best("Tell me about a cat", &cands), Some(2));
    }

    #[test]
    fn no_candidates_no_best() {
        assert_eq!(RuleReranker.best("x", &[]), None);
    }
}
