//! The reliability harness: a real swarm (`nova serve` and three `nova worker`s on the real
//! default model) under injected faults, and the gateway under hostile input.
//!
//! Faults: SIGKILL of a worker mid-load, a network partition of a worker (its own network
//! namespace, link down then up), delay and loss on a worker's link (a userspace proxy for delay,
//! since this kernel has no netem; nftables random drop inside the namespace for loss), and a
//! gateway restart under load. For every request the harness checks that it completes or ends
//! with a clear error before its deadline, that none hangs and that none completes twice; it
//! prints one Markdown row per scenario (sent / completed / clean errors / hung / lost, p99 under
//! the fault vs a fault-free run of the same load, the gateway's RSS before and after), and
//! appends it to the file named by `NOVA_FAULT_REPORT` when set (`scripts/reliability.sh`).
//!
//! `NOVA_FAULT_PROFILE=full` makes the load heavier and longer; the default is the bounded CI
//! form. `NOVA_FAULT_SEED` fixes the random kill positions.

mod abuse;
mod bad_input;
mod cluster;
mod kill;
mod link;
mod load;
mod net;
mod partition;
mod proxy;
mod report;
mod restart;
mod swarm_state;

use std::time::{SystemTime, UNIX_EPOCH};

/// How heavy a run is: the CI form is bounded to keep the whole suite quick on two cores.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Profile {
    /// Concurrent requests in a load wave.
    pub(crate) concurrency: usize,
    /// Tokens each request generates (`ignore_eos`, so every request has the same length).
    pub(crate) max_tokens: u32,
    /// Waves per measured run.
    pub(crate) waves: usize,
    /// Worker start/stop cycles in the churn case.
    pub(crate) churn: usize,
    /// Whether this is the full profile (for the report).
    pub(crate) full: bool,
}

impl Profile {
    pub(crate) fn get() -> Self {
        if std::env::var("NOVA_FAULT_PROFILE").is_ok_and(|p| p == "full") {
            Self { concurrency: 10, max_tokens: 64, waves: 3, churn: 30, full: true }
        } else {
            Self { concurrency: 10, max_tokens: 24, waves: 1, churn: 6, full: false }
        }
    }
}

/// A small xorshift generator: fault positions are random but reproducible from the printed
/// seed (`NOVA_FAULT_SEED`).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(scenario: &str) -> Self {
        let seed = std::env::var("NOVA_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        println!("{scenario}: NOVA_FAULT_SEED={seed}");
        Self(seed.max(1))
    }

    /// A number in `lo..hi` (`hi > lo`).
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + self.0 % (hi - lo).max(1)
    }
}
