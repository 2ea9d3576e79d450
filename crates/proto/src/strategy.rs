//! How the gateway combines the answers of several workers.

use serde::{Deserialize, Serialize};

/// A routing strategy. Adding one means a variant here (with its [`Strategy::description`]) and
/// its orchestration in the node's `gateway/`; `GET /v1/strategies` and the dashboard list it
/// from [`Strategy::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Send to K workers; the first complete answer wins and the rest are cancelled.
    Race,
    /// Collect K answers (deadline-bounded) and let a reranker pick the best.
    BestOfN,
    /// Collect K sampled answers, cluster equal final claims and return the largest cluster's
    /// best answer (self-consistency); the reranker breaks ties.
    Vote,
    /// K members answer, rank each other's answers anonymously (Borda count), and a chairman
    /// writes the final answer from them.
    Council,
    /// Decide per request from what the swarm has learned: fan out only where answers were
    /// measured to disagree enough for voting to pay. The default.
    #[default]
    Auto,
}

impl Strategy {
    /// Every strategy, in the order a UI lists them.
    pub const ALL: [Strategy; 5] =
        [Strategy::Auto, Strategy::Race, Strategy::BestOfN, Strategy::Vote, Strategy::Council];

    /// The wire and metrics name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Race => "race",
            Self::BestOfN => "best_of_n",
            Self::Vote => "vote",
            Self::Council => "council",
            Self::Auto => "auto",
        }
    }

    /// One line for people choosing a strategy (the dashboard's list, `GET /v1/strategies`).
    pub fn description(self) -> &'static str {
        match self {
            Self::Race => "fastest answer wins",
            Self::BestOfN => "answers are scored, the best is kept",
            Self::Vote => "the most common answer wins",
            Self::Council => "members rank each other, a chairman answers",
            Self::Auto => "the swarm decides from what it measured",
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_json() {
        for s in Strategy::ALL {
            let json = serde_json::to_string(&s).expect("serialize");
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<Strategy>(&json).expect("deserialize"), s);
        }
        assert!(serde_json::from_str::<Strategy>("\"majority\"").is_err());
        assert_eq!(Strategy::default(), Strategy::Auto);
    }

    #[test]
    fn every_strategy_is_listed_once_with_a_short_description() {
        let mut seen = std::collections::HashSet::new();
        for s in Strategy::ALL {
            assert!(seen.insert(s), "{s} listed twice");
            let d = s.description();
            assert!(!d.is_empty() && d.len() <= 80 && !d.contains('\n'), "{s}: {d:?}");
        }
        assert_eq!(Strategy::ALL[0], Strategy::default(), "the default comes first in a list");
    }
}
