//! One Markdown table row per scenario, printed and appended to `NOVA_FAULT_REPORT` when set.

use std::io::Write as _;

use crate::load::Stats;

/// A scenario's figures.
pub(crate) struct Row {
    pub(crate) case: String,
    pub(crate) fault: String,
    /// The fault-free run of the same load, when there is one.
    pub(crate) baseline: Option<Stats>,
    /// The run under the fault.
    pub(crate) under: Stats,
    pub(crate) rss_before_kib: Option<u64>,
    pub(crate) rss_after_kib: Option<u64>,
    /// Why it failed, empty when it passed.
    pub(crate) failures: Vec<String>,
    pub(crate) notes: String,
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "–".into())
}

fn mib(v: Option<u64>) -> String {
    v.map(|v| format!("{:.1}", v as f64 / 1024.0)).unwrap_or_else(|| "–".into())
}

impl Row {
    pub(crate) fn new(case: &str, fault: &str, under: Stats) -> Self {
        Self {
            case: case.into(),
            fault: fault.into(),
            baseline: None,
            under,
            rss_before_kib: None,
            rss_after_kib: None,
            failures: Vec::new(),
            notes: String::new(),
        }
    }

    /// Records a failed check (the row is still printed; [`Row::finish`] fails the test).
    pub(crate) fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.failures.push(what.into());
        }
    }

    /// The usual checks: nothing hung, nothing lost.
    pub(crate) fn check_no_hang_no_loss(&mut self) {
        let s = self.under.clone();
        self.check(s.hung == 0, format!("{} requests hung", s.hung));
        self.check(s.lost == 0, format!("{} requests lost ({})", s.lost, s.lost_why.join("; ")));
    }

    fn markdown(&self) -> String {
        let u = &self.under;
        let verdict = if self.failures.is_empty() {
            "pass".to_string()
        } else {
            format!("FAIL: {}", self.failures.join("; "))
        };
        let mut notes = self.notes.clone();
        if u.rescued > 0 {
            notes.push_str(&format!("; {} completed after a worker failed them", u.rescued));
        }
        if !u.errors.is_empty() {
            if !notes.is_empty() {
                notes.push_str("; ");
            }
            notes.push_str(&format!("errors: {}", u.error_summary()));
        }
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} → {} | {} → {} | {} | {} |",
            self.case,
            self.fault,
            u.sent,
            u.completed,
            u.clean_errors,
            u.hung,
            u.lost,
            ms(self.baseline.as_ref().and_then(|b| b.p99_ms)),
            ms(u.p99_ms),
            mib(self.rss_before_kib),
            mib(self.rss_after_kib),
            verdict.replace('|', "/"),
            notes.replace('|', "/").replace('\n', " "),
        )
    }

    /// Prints the row, appends it to the report file, then fails the test if a check failed.
    pub(crate) fn finish(self) {
        if let Err(e) = self.emit() {
            panic!("{e}");
        }
    }

    /// Prints the row and appends it to the report file; `Err` says which checks failed.
    pub(crate) fn emit(self) -> Result<(), String> {
        let line = self.markdown();
        println!("{line}");
        if let Some(path) = std::env::var_os("NOVA_FAULT_REPORT") {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .expect("open NOVA_FAULT_REPORT");
            // One write per row, so rows from concurrent tests never interleave.
            f.write_all(format!("{line}\n").as_bytes()).expect("write the report");
        }
        if self.failures.is_empty() {
            Ok(())
        } else {
            Err(format!("{}: {}", self.case, self.failures.join("; ")))
        }
    }
}
