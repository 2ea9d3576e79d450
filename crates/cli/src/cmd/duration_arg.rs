//! Durations on the command line: `500ms`, `30s`, `10m`, `2h` (a bare number is seconds).

use std::time::Duration;

/// Longest duration accepted: a week. Anything longer is a typo, not a setting.
const MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses a duration flag; for clap's `value_parser`.
pub(crate) fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 30s, 10m, 2h)"))?;
    let per_unit_ms: u64 = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        other => return Err(format!("unknown unit {other:?} in {s:?} (use ms, s, m or h)")),
    };
    let ms = n.checked_mul(per_unit_ms).ok_or_else(|| format!("{s:?} is too long"))?;
    let d = Duration::from_millis(ms);
    if d > MAX {
        return Err(format!("{s:?} is longer than a week"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_mistakes() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("15"), Ok(Duration::from_secs(15)));
        for bad in ["", "s", "1.5s", "-1s", "10 parsecs", "99999999999999999999h", "8d", "200h"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
