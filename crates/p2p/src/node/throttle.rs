//! Rate limit for the "refused an incoming connection" warning.
//!
//! Anyone who can reach the p2p port can make the node refuse connections (a wrong secret, a
//! port scanner), each in a few bytes. One WARN per refusal would let them fill the log files
//! and the terminal, so the first refusal of a window is logged in full and the rest are
//! summed into one line per window. Time is passed in, so the policy is tested without sleeping.

use std::time::{Duration, Instant};

/// What to log for one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Log this refusal in full.
    pub(crate) log: bool,
    /// Refusals left unlogged in the window that just closed, and how long that window was.
    pub(crate) summary: Option<(u64, Duration)>,
}

/// Counts refusals per window of `interval`; see the module doc.
#[derive(Debug)]
pub(crate) struct RefusalLog {
    interval: Duration,
    /// When the open window began and how many refusals it left unlogged.
    window: Option<(Instant, u64)>,
}

impl RefusalLog {
    pub(crate) fn new(interval: Duration) -> Self {
        Self { interval, window: None }
    }

    /// A connection was refused at `now`.
    pub(crate) fn refused(&mut self, now: Instant) -> Verdict {
        match &mut self.window {
            Some((start, quiet)) if now.saturating_duration_since(*start) < self.interval => {
                *quiet += 1;
                Verdict { log: false, summary: None }
            }
            _ => {
                let summary = self.close(now);
                self.window = Some((now, 0));
                Verdict { log: true, summary }
            }
        }
    }

    /// Called periodically: closes a window older than the interval and returns its summary,
    /// so refusals that stop arriving are still reported.
    pub(crate) fn tick(&mut self, now: Instant) -> Option<(u64, Duration)> {
        match self.window {
            Some((start, _)) if now.saturating_duration_since(start) >= self.interval => {
                self.close(now)
            }
            _ => None,
        }
    }

    fn close(&mut self, now: Instant) -> Option<(u64, Duration)> {
        let (start, quiet) = self.window.take()?;
        (quiet > 0).then(|| (quiet, now.saturating_duration_since(start)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn logs_the_first_then_one_summary_per_window() {
        let t0 = Instant::now();
        let mut log = RefusalLog::new(MINUTE);
        assert_eq!(log.refused(t0), Verdict { log: true, summary: None });
        // A flood within the window: nothing logged, all counted.
        for i in 1..=1000 {
            let v = log.refused(t0 + Duration::from_millis(i));
            assert_eq!(v, Verdict { log: false, summary: None });
        }
        assert_eq!(log.tick(t0 + Duration::from_secs(30)), None);
        // The window closes at the tick after a minute: one summary line.
        let t1 = t0 + Duration::from_secs(61);
        assert_eq!(log.tick(t1), Some((1000, Duration::from_secs(61))));
        assert_eq!(log.tick(t1 + MINUTE), None);
        // The next refusal starts a new window and is logged in full.
        assert_eq!(log.refused(t1 + MINUTE), Verdict { log: true, summary: None });
    }

    #[test]
    fn a_refusal_after_the_window_reports_the_previous_one() {
        let t0 = Instant::now();
        let mut log = RefusalLog::new(MINUTE);
        log.refused(t0);
        log.refused(t0 + Duration::from_secs(1));
        log.refused(t0 + Duration::from_secs(2));
        // No tick in between (a busy loop): the late refusal carries the summary itself.
        let late = t0 + Duration::from_secs(90);
        assert_eq!(
            log.refused(late),
            Verdict { log: true, summary: Some((2, Duration::from_secs(90))) }
        );
        assert_eq!(log.tick(late + MINUTE), None, "nothing was suppressed in the new window");
    }

    #[test]
    fn a_lone_refusal_has_no_summary() {
        let t0 = Instant::now();
        let mut log = RefusalLog::new(MINUTE);
        log.refused(t0);
        assert_eq!(log.tick(t0 + 2 * MINUTE), None);
        assert_eq!(log.refused(t0 + 3 * MINUTE), Verdict { log: true, summary: None });
    }
}
