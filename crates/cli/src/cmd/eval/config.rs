//! What is measured: a named way of asking the gateway (`greedy`, `vote:5`, ..) and the
//! `POST /submit` body it sends.

use std::fmt;

use serde_json::{json, Value};

/// Temperature of every sampled configuration.
const SAMPLED_TEMPERATURE: f64 = 0.7;
/// The gateway clamps fanout to 1..=16; asking for more would measure something else.
const MAX_FANOUT: usize = 16;

/// One way of asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Config {
    /// One worker, temperature 0: the baseline.
    Greedy,
    /// One worker, temperature 0.7, a seed per item.
    Sampled,
    /// K sampled answers, a reranker picks one.
    BestOfN(usize),
    /// K sampled answers, the most common answer wins.
    Vote(usize),
    /// K members answer and rank each other; a chairman writes the answer.
    Council(usize),
    /// Nothing but `max_tokens`: the gateway's defaults decide.
    Auto,
}

impl Config {
    /// Parses `name` or `name:fanout`.
    pub(crate) fn parse(s: &str) -> anyhow::Result<Self> {
        let s = s.trim();
        let (name, k) = match s.split_once(':') {
            Some((n, k)) => {
                let k: usize = k
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{s:?}: the fanout after `:` must be a number"))?;
                if !(1..=MAX_FANOUT).contains(&k) {
                    anyhow::bail!("{s:?}: the fanout must be 1 to {MAX_FANOUT}");
                }
                (n, Some(k))
            }
            None => (s, None),
        };
        let fixed = |c: Config| match k {
            None => Ok(c),
            Some(_) => Err(anyhow::anyhow!("{s:?}: `{name}` takes no fanout")),
        };
        match name {
            "greedy" => fixed(Config::Greedy),
            "sampled" => fixed(Config::Sampled),
            "auto" => fixed(Config::Auto),
            "best_of_n" => Ok(Config::BestOfN(k.unwrap_or(3))),
            "vote" => Ok(Config::Vote(k.unwrap_or(5))),
            "council" => Ok(Config::Council(k.unwrap_or(3))),
            _ => anyhow::bail!(
                "unknown configuration {s:?}; known: greedy, sampled, best_of_n:K, vote:K, council:K, auto"
            ),
        }
    }

    /// Parses a comma-separated list; duplicates are refused (they would only double the cost).
    pub(crate) fn parse_list(s: &str) -> anyhow::Result<Vec<Self>> {
        let mut out: Vec<Config> = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let c = Config::parse(part)?;
            if out.contains(&c) {
                anyhow::bail!("configuration {c} is listed twice");
            }
            out.push(c);
        }
        if out.is_empty() {
            anyhow::bail!("no configuration given");
        }
        Ok(out)
    }

    /// The strategy name sent, if any.
    pub(crate) fn strategy(self) -> Option<&'static str> {
        match self {
            Config::Greedy | Config::Sampled => Some("race"),
            Config::BestOfN(_) => Some("best_of_n"),
            Config::Vote(_) => Some("vote"),
            Config::Council(_) => Some("council"),
            Config::Auto => None,
        }
    }

    /// The fanout sent, if any.
    pub(crate) fn fanout(self) -> Option<usize> {
        match self {
            Config::Greedy | Config::Sampled => Some(1),
            Config::BestOfN(k) | Config::Vote(k) | Config::Council(k) => Some(k),
            Config::Auto => None,
        }
    }

    /// The `POST /submit` body for `prompt` of kind `kind`. `seed` is the item's seed: the
    /// gateway gives each of a job's samples its own seed derived from it, so K-sample
    /// strategies stay reproducible without K identical samples. With `rag`, the body asks for
    /// an answer grounded in the swarm's shared documents (`"rag": true`); without it, the body
    /// carries no `rag` field at all, as every client before retrieval sent.
    pub(crate) fn body(
        self,
        prompt: &str,
        kind: &str,
        max_tokens: u32,
        seed: u64,
        rag: bool,
    ) -> Value {
        let mut body = self.plain_body(prompt, kind, max_tokens, seed);
        if rag {
            if let Some(o) = body.as_object_mut() {
                o.insert("rag".into(), Value::Bool(true));
            }
        }
        body
    }

    fn plain_body(self, prompt: &str, kind: &str, max_tokens: u32, seed: u64) -> Value {
        let params = match self {
            Config::Greedy => json!({"temperature": 0, "max_tokens": max_tokens}),
            Config::Sampled | Config::BestOfN(_) | Config::Vote(_) | Config::Council(_) => {
                json!({"temperature": SAMPLED_TEMPERATURE, "max_tokens": max_tokens, "seed": seed})
            }
            // What a client that asks for greedy answers and tags its questions by topic sends
            // when it leaves the strategy to the gateway: `auto` learns per tag, answers
            // greedily when it answers once and samples when it votes.
            Config::Auto => {
                return json!({"prompt": prompt, "tags": [kind], "params":
                    {"temperature": 0, "max_tokens": max_tokens, "seed": seed}})
            }
        };
        json!({
            "prompt": prompt,
            "strategy": self.strategy(),
            "fanout": self.fanout(),
            "params": params,
            "debug": false,
        })
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Config::Greedy => f.write_str("greedy"),
            Config::Sampled => f.write_str("sampled"),
            Config::Auto => f.write_str("auto"),
            Config::BestOfN(k) => write!(f, "best_of_n:{k}"),
            Config::Vote(k) => write!(f, "vote:{k}"),
            Config::Council(k) => write!(f, "council:{k}"),
        }
    }
}

/// The seed of one item: fixed by `--seed` and the item's id, so it does not change when
/// `--limit` or `--kinds` pick a different subset.
pub(crate) fn item_seed(seed: u64, id: &str) -> u64 {
    // FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
    id.bytes()
        .fold(0xcbf2_9ce4_8422_2325 ^ seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_fanouts() -> anyhow::Result<()> {
        let list = Config::parse_list("greedy,sampled,best_of_n:3,vote:3,vote:5,council:3,auto")?;
        assert_eq!(
            list.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(","),
            "greedy,sampled,best_of_n:3,vote:3,vote:5,council:3,auto"
        );
        assert!(Config::parse("greedy:2").is_err());
        assert!(Config::parse("vote:0").is_err());
        assert!(Config::parse("vote:17").is_err());
        assert!(Config::parse("vote:x").is_err());
        assert!(Config::parse("majority").is_err());
        assert!(Config::parse_list("vote:3,vote:3").is_err());
        assert!(Config::parse_list(" , ").is_err());
        Ok(())
    }

    #[test]
    fn bodies_match_the_submit_endpoint() {
        let b = Config::Greedy.body("q", "k", 32, 9, false);
        assert_eq!(
            b,
            json!({"prompt": "q", "strategy": "race", "fanout": 1,
            "params": {"temperature": 0, "max_tokens": 32}, "debug": false})
        );
        let b = Config::Sampled.body("q", "k", 32, 9, false);
        assert_eq!(b["params"]["seed"], 9);
        let b = Config::Vote(5).body("q", "k", 16, 9, false);
        assert_eq!((b["strategy"].as_str(), b["fanout"].as_u64()), (Some("vote"), Some(5)));
        assert_eq!(b["params"]["seed"], 9);
        assert_eq!(
            Config::Auto.body("q", "k", 32, 9, false),
            json!({"prompt": "q", "tags": ["k"],
                "params": {"temperature": 0, "max_tokens": 32, "seed": 9}})
        );
    }

    #[test]
    fn rag_adds_one_field_to_any_body() {
        for c in [Config::Greedy, Config::Vote(3), Config::Auto] {
            let mut on = c.body("q", "k", 32, 9, true);
            assert_eq!(on["rag"], json!(true), "{c}");
            on.as_object_mut().map(|o| o.remove("rag"));
            assert_eq!(on, c.body("q", "k", 32, 9, false), "{c}");
            assert!(c.body("q", "k", 32, 9, false).get("rag").is_none(), "{c}");
        }
    }

    #[test]
    fn item_seeds_are_stable_and_distinct() {
        assert_eq!(item_seed(1, "a"), item_seed(1, "a"));
        assert_ne!(item_seed(1, "a"), item_seed(1, "b"));
        assert_ne!(item_seed(1, "a"), item_seed(2, "a"));
    }
}
