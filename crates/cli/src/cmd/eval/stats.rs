//! Small statistics: the Wilson interval, percentiles and the tokens a response cost.

use serde_json::Value;

/// z for a two-sided 95 % interval.
const Z95: f64 = 1.959_963_984_540_054;

/// The 95 % Wilson score interval of `k` successes in `n` trials, or `None` for `n == 0`.
/// Wilson rather than the normal approximation: it stays inside [0, 1] and is not zero-width
/// at 0/n or n/n, which small sets hit often.
pub(crate) fn wilson(k: usize, n: usize) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let (k, n) = (k.min(n) as f64, n as f64);
    let p = k / n;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// The nearest-rank `q`-th percentile (0 < q ≤ 100) of `values`, or `None` if empty.
pub(crate) fn percentile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// Tokens generated for one answer: every attempt in `trace.attempts`, plus every attempt of
/// every stage in `trace.stages` (multi-stage strategies such as council). Read from untyped
/// JSON so a gateway newer or older than this binary still counts what it reports.
pub(crate) fn tokens_spent(trace: &Value) -> u64 {
    let sum = |attempts: &Value| -> u64 {
        attempts
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.get("tokens")?.as_u64()).sum())
            .unwrap_or(0)
    };
    let stages = trace
        .get("stages")
        .and_then(Value::as_array)
        .map(|s| s.iter().filter_map(|st| st.get("attempts")).map(sum).sum())
        .unwrap_or(0);
    trace.get("attempts").map(sum).unwrap_or(0) + stages
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn close(a: (f64, f64), b: (f64, f64)) -> bool {
        (a.0 - b.0).abs() < 1e-4 && (a.1 - b.1).abs() < 1e-4
    }

    #[test]
    fn wilson_known_values() {
        let w = |k, n| wilson(k, n).expect("n > 0");
        assert!(close(w(0, 10), (0.0, 0.27753)), "{:?}", w(0, 10));
        assert!(close(w(5, 10), (0.23659, 0.76341)), "{:?}", w(5, 10));
        assert!(close(w(10, 10), (0.72247, 1.0)), "{:?}", w(10, 10));
        assert!(close(w(81, 263), (0.25529, 0.36621)), "{:?}", w(81, 263));
        assert_eq!(wilson(0, 0), None);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(10.0));
        assert_eq!(percentile(&v, 95.0), Some(19.0));
        assert_eq!(percentile(&[7.0], 95.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn tokens_count_attempts_and_stages_and_tolerate_odd_shapes() {
        let t = json!({"attempts": [{"tokens": 5}, {"tokens": 7}, {"outcome": "error"}],
            "stages": [{"attempts": [{"tokens": 3}]}, {"name": "x"}, {"attempts": [{"tokens": 2}]}]});
        assert_eq!(tokens_spent(&t), 17);
        assert_eq!(tokens_spent(&json!({"attempts": [{"tokens": 4}]})), 4);
        assert_eq!(tokens_spent(&json!({"attempts": "no", "stages": 3})), 0);
        assert_eq!(tokens_spent(&Value::Null), 0);
    }
}
