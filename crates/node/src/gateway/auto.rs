//! `auto`: fan out only where it pays, as measured.
//!
//! Voting helps on questions where one sample is right more often than not and hurts where it
//! is not (Chen et al. 2024). The gateway cannot see correctness, but it sees agreement: the
//! share of samples in the winning cluster of every vote. Per tag (or for untagged requests as
//! a whole) it keeps a running mean of that agreement, and decides:
//!
//! - one eligible worker: a single answer;
//! - fewer than [`MIN_VOTES`] votes seen: vote, to learn;
//! - samples nearly always agree (mean ≥ [`AGREE`]): a single answer is as good and K times
//!   cheaper;
//! - samples scatter (mean < [`SCATTER`]): the majority is rarely right either, so a single
//!   answer;
//! - in between: vote.
//!
//! Every [`EXPLORE_EVERY`]-th request of a settled tag votes anyway, so a tag whose questions
//! change is re-measured. The thresholds are set from the literature's argument, not tuned on
//! the evaluation set.

use std::collections::HashMap;

use nova_api::{Job, VoteSummary};

/// Votes seen before the mean is trusted.
pub(crate) const MIN_VOTES: u32 = 8;
/// Mean agreement at or above which fan-out adds nothing.
pub(crate) const AGREE: f64 = 0.85;
/// Mean agreement below which a majority is too often wrong to be worth its cost.
pub(crate) const SCATTER: f64 = 0.45;
/// A settled tag still votes once in this many requests.
pub(crate) const EXPLORE_EVERY: u64 = 10;
/// Samples per vote that `auto` starts.
pub(crate) const VOTE_FANOUT: usize = 3;
/// Weight of the newest vote in the running mean.
const ALPHA: f64 = 0.15;
/// Keys remembered; the least recently updated is forgotten first.
const MAX_KEYS: usize = 4096;
/// The key of untagged requests.
const UNTAGGED: &str = "*";
/// Sampling temperature of auto's votes when the client asked for (near) greedy answers:
/// greedy samples of one model are all the same answer.
pub(crate) const VOTE_TEMPERATURE: f32 = 0.7;

/// Running agreement of one key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stat {
    pub(crate) votes: u32,
    pub(crate) mean: f64,
    /// Requests `auto` decided for this key.
    decided: u64,
    touched: u64,
}

/// What `auto` runs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Choice {
    Single { why: String },
    Vote { fanout: usize, why: String },
}

/// The learned agreement per key, bounded.
#[derive(Debug, Default)]
pub(crate) struct Agreement {
    stats: HashMap<String, Stat>,
    clock: u64,
}

fn keys(tags: &[String]) -> Vec<&str> {
    if tags.is_empty() {
        vec![UNTAGGED]
    } else {
        tags.iter().map(String::as_str).collect()
    }
}

impl Agreement {
    /// Records a vote's agreement under each of `tags`.
    pub(crate) fn learn(&mut self, tags: &[String], vote: &VoteSummary) {
        if vote.answers < 2 {
            return;
        }
        for k in keys(tags) {
            self.clock += 1;
            let clock = self.clock;
            match self.stats.get_mut(k) {
                Some(s) => {
                    s.votes = s.votes.saturating_add(1);
                    // A plain mean until the estimate settles, then a moving one.
                    let w = (1.0 / f64::from(s.votes)).max(ALPHA);
                    s.mean += w * (vote.agreement - s.mean);
                    s.touched = clock;
                }
                None => {
                    self.make_room();
                    let s = Stat { votes: 1, mean: vote.agreement, decided: 0, touched: clock };
                    self.stats.insert(k.to_string(), s);
                }
            }
        }
    }

    fn make_room(&mut self) {
        if self.stats.len() < MAX_KEYS {
            return;
        }
        if let Some(oldest) =
            self.stats.iter().min_by_key(|(_, s)| s.touched).map(|(k, _)| k.clone())
        {
            self.stats.remove(&oldest);
        }
    }

    /// The least settled of the keys' stats (fewest votes): a request is as uncertain as its
    /// least-known tag.
    fn stat(&self, tags: &[String]) -> Option<Stat> {
        let mut out: Option<Stat> = None;
        for k in keys(tags) {
            let s = self.stats.get(k).copied()?;
            if out.is_none_or(|o| s.votes < o.votes) {
                out = Some(s);
            }
        }
        out
    }

    /// Decides for a job with `tags` when `workers` are eligible. A `stream`ed job never
    /// votes just to learn: a vote sends its answer only at the end, and an interactive client
    /// should not pay that for the gateway's curiosity.
    pub(crate) fn decide(&mut self, tags: &[String], workers: usize, stream: bool) -> Choice {
        if workers <= 1 {
            return Choice::Single { why: "one eligible worker: a single answer".into() };
        }
        let fanout = VOTE_FANOUT;
        let seen = self.stat(tags).map_or(0, |s| s.votes);
        if seen < MIN_VOTES {
            if stream {
                let why = format!(
                    "learning ({seen} of {MIN_VOTES} votes seen), but streamed: one answer"
                );
                return Choice::Single { why };
            }
            let why = format!("learning: {seen} of {MIN_VOTES} votes seen");
            return Choice::Vote { fanout, why };
        }
        let Some(s) = self.stat(tags) else {
            return Choice::Vote { fanout, why: "learning".into() };
        };
        let n = {
            // Count decisions on the first key, so exploration recurs per tag.
            let k = keys(tags)[0];
            let st = self.stats.get_mut(k);
            st.map_or(0, |st| {
                st.decided += 1;
                st.decided
            })
        };
        let explore = n % EXPLORE_EVERY == 0;
        let mean = s.mean;
        if mean >= AGREE && !explore {
            Choice::Single { why: format!("samples agree (mean agreement {mean:.2}): one answer") }
        } else if mean < SCATTER && !explore {
            Choice::Single {
                why: format!("samples scatter (mean agreement {mean:.2}): a majority rarely helps"),
            }
        } else if explore && stream && !(SCATTER..AGREE).contains(&mean) {
            Choice::Single { why: format!("streamed: one answer (mean agreement {mean:.2})") }
        } else if explore && !(SCATTER..AGREE).contains(&mean) {
            Choice::Vote { fanout, why: format!("re-measuring (mean agreement {mean:.2})") }
        } else {
            Choice::Vote { fanout, why: format!("samples split (mean agreement {mean:.2}): vote") }
        }
    }
}

/// The tags `auto` keys on: the job's own (bounded by the API).
pub(crate) fn tags(job: &Job) -> &[String] {
    super::bounded_tags(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(agreement: f64) -> VoteSummary {
        VoteSummary { claim: "x".into(), agreement, distinct: 2, answers: 3 }
    }

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_worker_gets_a_single_answer_and_new_tags_vote_to_learn() {
        let mut a = Agreement::default();
        assert!(matches!(a.decide(&[], 1, false), Choice::Single { .. }));
        assert!(matches!(a.decide(&[], 3, false), Choice::Vote { fanout: 3, .. }));
        assert!(matches!(a.decide(&[], 3, true), Choice::Single { .. }), "streams do not learn");
        for _ in 0..MIN_VOTES - 1 {
            a.learn(&[], &vote(1.0));
        }
        assert!(matches!(a.decide(&[], 3, false), Choice::Vote { .. }), "still learning");
    }

    #[test]
    fn settled_tags_vote_only_where_samples_split() {
        let mut a = Agreement::default();
        for _ in 0..MIN_VOTES {
            a.learn(&tags(&["math"]), &vote(0.6));
            a.learn(&tags(&["capitals"]), &vote(1.0));
            a.learn(&tags(&["riddles"]), &vote(0.34));
        }
        let single = |a: &mut Agreement, t| {
            (0..EXPLORE_EVERY - 1)
                .filter(|_| matches!(a.decide(&tags(&[t]), 3, false), Choice::Single { .. }))
                .count()
        };
        assert_eq!(single(&mut a, "math"), 0);
        assert_eq!(single(&mut a, "capitals"), (EXPLORE_EVERY - 1) as usize);
        assert_eq!(single(&mut a, "riddles"), (EXPLORE_EVERY - 1) as usize);
        // The tenth request of a settled tag re-measures.
        assert!(matches!(a.decide(&tags(&["capitals"]), 3, false), Choice::Vote { .. }));
        // A request is as uncertain as its least-known tag.
        assert!(matches!(a.decide(&tags(&["capitals", "new"]), 3, false), Choice::Vote { .. }));
    }

    #[test]
    fn the_table_is_bounded() {
        let mut a = Agreement::default();
        for i in 0..MAX_KEYS + 10 {
            a.learn(&[format!("t{i}")], &vote(0.5));
        }
        assert_eq!(a.stats.len(), MAX_KEYS);
        assert!(!a.stats.contains_key("t0"), "the oldest is forgotten");
        assert!(a.stats.contains_key(&format!("t{}", MAX_KEYS + 9)));
    }

    #[test]
    fn single_sample_votes_teach_nothing() {
        let mut a = Agreement::default();
        a.learn(&[], &VoteSummary { claim: "x".into(), agreement: 1.0, distinct: 1, answers: 1 });
        assert!(a.stats.is_empty());
    }
}
