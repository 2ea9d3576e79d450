//! Where readings come from, and how the sources are merged into one [`Reading`].

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use crate::{meminfo, sysfs, termux, BatterySource, Reading};

/// The Termux:API command that reports the battery.
pub const TERMUX_BATTERY_STATUS: &str = "termux-battery-status";

/// After this many failures in a row `termux-battery-status` is no longer run: without the
/// Termux:API app it hangs until killed, and paying the timeout on every reading would stall
/// the caller for nothing.
const TERMUX_MAX_FAILURES: u32 = 3;

/// The filesystem roots and command a reading is taken from. Injectable so tests can point it
/// at fake trees; [`Sources::system`] gives the real ones.
#[derive(Debug)]
pub struct Sources {
    sysfs_root: PathBuf,
    proc_root: PathBuf,
    termux_cmd: Option<PathBuf>,
    termux_timeout: Duration,
    termux_failures: AtomicU32,
}

impl Sources {
    /// Default limit for one run of `termux-battery-status`; it usually answers within a second.
    pub const DEFAULT_TERMUX_TIMEOUT: Duration = Duration::from_secs(5);

    /// Sources under the given roots (normally `/sys` and `/proc`), without Termux.
    pub fn new(sysfs_root: impl Into<PathBuf>, proc_root: impl Into<PathBuf>) -> Self {
        Self {
            sysfs_root: sysfs_root.into(),
            proc_root: proc_root.into(),
            termux_cmd: None,
            termux_timeout: Self::DEFAULT_TERMUX_TIMEOUT,
            termux_failures: AtomicU32::new(0),
        }
    }

    /// The real system: `/sys`, `/proc`, and `termux-battery-status` if it is on `path` (the
    /// caller's `PATH` variable; pass `None` to leave Termux out).
    pub fn system(path: Option<&OsStr>) -> Self {
        let termux = path.and_then(|p| find_in_path(TERMUX_BATTERY_STATUS, p));
        Self::new("/sys", "/proc").with_termux(termux)
    }

    /// Uses `cmd` as `termux-battery-status` (or no Termux with `None`).
    #[must_use]
    pub fn with_termux(mut self, cmd: Option<PathBuf>) -> Self {
        self.termux_cmd = cmd;
        self
    }

    /// Limits one run of `termux-battery-status`.
    #[must_use]
    pub fn with_termux_timeout(mut self, timeout: Duration) -> Self {
        self.termux_timeout = timeout;
        self
    }

    /// The Termux command in use, if any.
    pub fn termux_cmd(&self) -> Option<&Path> {
        self.termux_cmd.as_deref()
    }

    /// Takes a reading. Blocking: reads a few dozen small files and may run
    /// `termux-battery-status` for up to its timeout, so async callers should use
    /// `spawn_blocking`. Never fails: what cannot be read is listed in `missing` and `errors`.
    ///
    /// Merge rule: where `termux-battery-status` answers, its battery percentage, charging state
    /// and battery temperature win over sysfs, because it is what Android itself uses, while
    /// sysfs under Termux is partly hidden or describes another supply. Each value falls back to
    /// sysfs separately when Termux lacks it. The temperature is the hottest of everything
    /// readable: the thermal zones, the sysfs batteries and Termux's battery.
    pub fn read(&self) -> Reading {
        let mut r = Reading::default();
        let power = sysfs::power(&self.sysfs_root, &mut r.errors);
        let zones = sysfs::thermal(&self.sysfs_root, &mut r.errors);
        let tmx = self.termux(&mut r.errors);

        r.battery_pct = tmx.pct.or(power.battery_pct);
        r.battery_source = match (tmx.pct, power.battery_pct) {
            (Some(_), _) => Some(BatterySource::Termux),
            (None, Some(_)) => Some(BatterySource::Sysfs),
            (None, None) => None,
        };
        r.charging = tmx.charging.or(power.charging);
        r.temp_c = [zones, power.battery_temp_c, tmx.temp_c].into_iter().flatten().reduce(f32::max);
        let mem = meminfo::read(&self.proc_root, &mut r.errors);
        r.free_ram_mb = mem.free_mb;
        r.total_ram_mb = mem.total_mb;
        r.fill_missing();
        r
    }

    fn termux(&self, errors: &mut Vec<crate::SensorError>) -> termux::Battery {
        let Some(cmd) = &self.termux_cmd else { return termux::Battery::default() };
        if self.termux_failures.load(Ordering::Relaxed) >= TERMUX_MAX_FAILURES {
            return termux::Battery::default();
        }
        match termux::read(cmd, self.termux_timeout) {
            Ok(b) => {
                self.termux_failures.store(0, Ordering::Relaxed);
                b
            }
            Err(e) => {
                self.termux_failures.fetch_add(1, Ordering::Relaxed);
                errors.push(e);
                termux::Battery::default()
            }
        }
    }
}

/// The first executable file called `name` in the directories of `path` (a `PATH` value).
pub fn find_in_path(name: &str, path: &OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

#[cfg(test)]
mod tests;
