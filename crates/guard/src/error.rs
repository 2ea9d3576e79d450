//! Errors: a sensor that exists but cannot be read or makes no sense, and a bad configuration.

use std::path::PathBuf;

/// A sensor that is present but unusable. Never fatal: the reading carries on without it, and
/// [`crate::Guard::observe`] hands each distinct error to the caller once, for logging.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SensorError {
    /// The file exists but could not be read (typically permission denied on Android, where
    /// SELinux hides most of sysfs). The value it would have given is treated as missing.
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error, as text (so the error can be cloned and compared).
        reason: String,
    },
    /// The file was read but its content is not a value of the expected kind or range; ignored.
    #[error("unexpected content {content:?} in {path}")]
    Garbage {
        /// The file.
        path: PathBuf,
        /// The first few characters of what it held.
        content: String,
    },
    /// `termux-battery-status` could not be started.
    #[error("cannot run {cmd}: {reason}")]
    TermuxSpawn {
        /// The command.
        cmd: PathBuf,
        /// The I/O error, as text.
        reason: String,
    },
    /// `termux-battery-status` did not finish in time and was killed. This is what it does when
    /// the Termux:API app is not installed.
    #[error("{cmd} did not answer within {timeout_ms} ms (is the Termux:API app installed?)")]
    TermuxTimeout {
        /// The command.
        cmd: PathBuf,
        /// The limit it exceeded.
        timeout_ms: u64,
    },
    /// `termux-battery-status` exited unsuccessfully, printed too much, or printed something
    /// that is not the JSON it should print. Its values are treated as missing.
    #[error("{cmd}: {reason}")]
    TermuxOutput {
        /// The command.
        cmd: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

impl SensorError {
    /// A stable name for the kind of error, for metrics and structured logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreadable { .. } => "unreadable",
            Self::Garbage { .. } => "garbage",
            Self::TermuxSpawn { .. } => "termux_spawn",
            Self::TermuxTimeout { .. } => "termux_timeout",
            Self::TermuxOutput { .. } => "termux_output",
        }
    }
}

/// Thresholds that would make the guard flap or never act.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A threshold is NaN or infinite.
    #[error("guard threshold {field} must be a finite number")]
    NotFinite {
        /// The field's name as in the config file.
        field: &'static str,
    },
    /// The resume threshold is on the wrong side of the pause threshold, so there would be no
    /// hysteresis band (or a negative one).
    #[error("guard: {resume_field} ({resume}) must be {relation} {pause_field} ({pause})")]
    NoHysteresis {
        /// The pause threshold's name.
        pause_field: &'static str,
        /// Its value.
        pause: f32,
        /// The resume threshold's name.
        resume_field: &'static str,
        /// Its value.
        resume: f32,
        /// "at least" or "at most".
        relation: &'static str,
    },
}

impl ConfigError {
    /// A stable name for the kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFinite { .. } => "not_finite",
            Self::NoHysteresis { .. } => "no_hysteresis",
        }
    }
}
