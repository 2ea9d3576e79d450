use std::path::PathBuf;

use super::*;

fn reading(battery_pct: Option<f32>, charging: Option<bool>, temp_c: Option<f32>) -> Reading {
    let mut r = Reading { battery_pct, charging, temp_c, ..Reading::default() };
    r.fill_missing();
    r
}

fn guard() -> Guard {
    Guard::new(Config::default()).expect("default config is valid")
}

#[test]
fn low_battery_pauses_only_when_not_charging() {
    let mut g = guard();
    let o = g.observe(&reading(Some(22.0), Some(true), Some(30.0)));
    assert!(!o.paused && o.change.is_none() && o.reasons.is_empty(), "{o:?}");

    let o = g.observe(&reading(Some(22.0), Some(false), Some(30.0)));
    assert!(o.paused);
    assert_eq!(o.change, Some(Change::Paused));
    assert_eq!(o.reasons.len(), 1);
    assert_eq!(o.reasons[0].to_string(), "battery 22 % and not charging");

    // Staying paused is not a new change.
    let o = g.observe(&reading(Some(21.0), Some(false), Some(30.0)));
    assert!(o.paused && o.change.is_none());
}

#[test]
fn unknown_charging_counts_as_not_charging() {
    let mut g = guard();
    let o = g.observe(&reading(Some(10.0), None, None));
    assert!(o.paused);
    assert_eq!(o.reasons[0].to_string(), "battery 10 % and charging state unknown");
}

#[test]
fn heat_pauses_and_says_how_hot() {
    let mut g = guard();
    let o = g.observe(&reading(None, None, Some(45.0)));
    assert!(!o.paused, "45 °C is the limit, not above it");
    let o = g.observe(&reading(Some(90.0), Some(false), Some(47.5)));
    assert_eq!(o.change, Some(Change::Paused));
    assert_eq!(o.reasons, vec![Reason::Hot { temp_c: 47.5 }]);
    assert_eq!(o.reasons[0].to_string(), "temperature 47.5 °C");
}

#[test]
fn both_reasons_are_reported() {
    let mut g = guard();
    let o = g.observe(&reading(Some(5.0), Some(false), Some(60.0)));
    let text: Vec<String> = o.reasons.iter().map(ToString::to_string).collect();
    assert_eq!(text, ["battery 5 % and not charging", "temperature 60.0 °C"]);
}

#[test]
fn battery_hysteresis_holds_until_resume_threshold_or_charger() {
    let mut g = guard();
    assert!(g.observe(&reading(Some(29.0), Some(false), None)).paused);
    // Above the pause threshold but below the resume one: still paused, and it says why.
    let o = g.observe(&reading(Some(32.0), Some(false), None));
    assert!(o.paused && o.change.is_none());
    assert_eq!(o.reasons[0].to_string(), "battery 32 % and not charging");
    let o = g.observe(&reading(Some(35.0), Some(false), None));
    assert!(!o.paused);
    assert_eq!(o.change, Some(Change::Resumed));
    assert!(o.reasons.is_empty());
    // Running again: 32 % no longer pauses (it is above 30 %).
    assert!(!g.observe(&reading(Some(32.0), Some(false), None)).paused);

    // Plugging in resumes at once, whatever the charge.
    assert!(g.observe(&reading(Some(20.0), Some(false), None)).paused);
    let o = g.observe(&reading(Some(20.0), Some(true), None));
    assert_eq!(o.change, Some(Change::Resumed));
    assert!(!g.is_paused());
}

#[test]
fn heat_hysteresis_holds_until_cool() {
    let mut g = guard();
    assert!(g.observe(&reading(None, None, Some(46.0))).paused);
    let o = g.observe(&reading(None, None, Some(43.0)));
    assert!(o.paused);
    assert_eq!(o.reasons, vec![Reason::Hot { temp_c: 43.0 }]);
    let o = g.observe(&reading(None, None, Some(40.0)));
    assert_eq!(o.change, Some(Change::Resumed));
    assert!(!g.observe(&reading(None, None, Some(44.0))).paused);
}

#[test]
fn resume_needs_every_condition() {
    let mut g = guard();
    assert!(g.observe(&reading(Some(20.0), Some(false), Some(50.0))).paused);
    // Cool again, but the battery still holds the pause.
    let o = g.observe(&reading(Some(33.0), Some(false), Some(30.0)));
    assert!(o.paused);
    assert_eq!(o.reasons.len(), 1);
    // Charged, but now it is hot again.
    assert!(g.observe(&reading(Some(80.0), Some(false), Some(41.0))).paused);
    assert!(!g.observe(&reading(Some(80.0), Some(false), Some(39.0))).paused);
}

#[test]
fn missing_sensors_never_pause_and_are_reported_once() {
    let mut g = guard();
    let o = g.observe(&reading(None, None, None));
    assert!(!o.paused);
    assert_eq!(o.newly_missing, Sensor::ALL.to_vec());
    let o = g.observe(&reading(None, None, None));
    assert!(o.newly_missing.is_empty(), "{o:?}");
    // A sensor that comes back and goes again is not reported twice.
    g.observe(&reading(Some(50.0), Some(true), Some(30.0)));
    assert!(g.observe(&reading(None, None, None)).newly_missing.is_empty());
}

#[test]
fn missing_sensors_reported_as_they_first_go_missing() {
    let mut g = guard();
    let mut r = reading(Some(50.0), Some(true), Some(30.0));
    r.free_ram_mb = Some(100);
    r.total_ram_mb = Some(1000);
    r.fill_missing();
    assert!(g.observe(&r).newly_missing.is_empty());
    r.temp_c = None;
    r.fill_missing();
    assert_eq!(g.observe(&r).newly_missing, vec![Sensor::Temperature]);
    assert!(g.observe(&r).newly_missing.is_empty());
}

#[test]
fn sensor_errors_are_reported_once() {
    let mut g = guard();
    let e = |p: &str| SensorError::Garbage { path: PathBuf::from(p), content: "x".into() };
    let mut r = reading(None, None, None);
    r.errors = vec![e("/a"), e("/b")];
    assert_eq!(g.observe(&r).new_errors, vec![e("/a"), e("/b")]);
    r.errors = vec![e("/b"), e("/c")];
    assert_eq!(g.observe(&r).new_errors, vec![e("/c")]);
}

#[test]
fn config_defaults_partial_files_and_validation() {
    let c: Config = serde_json::from_str(r#"{"pause_above_temp_c": 50}"#).expect("partial");
    assert_eq!(c, Config { pause_above_temp_c: 50.0, ..Config::default() });
    assert!(serde_json::from_str::<Config>(r#"{"pause_above_temp": 50}"#).is_err(), "typo");

    let no_band = Config { resume_at_battery_pct: 25.0, ..Config::default() };
    let err = Guard::new(no_band).expect_err("resume below pause");
    assert_eq!(err.kind(), "no_hysteresis");
    assert!(err.to_string().contains("resume_at_battery_pct (25)"), "{err}");
    let hot = Config { resume_at_temp_c: 50.0, ..Config::default() };
    assert!(Guard::new(hot).is_err());
    let nan = Config { pause_above_temp_c: f32::NAN, ..Config::default() };
    assert_eq!(Guard::new(nan).expect_err("NaN").kind(), "not_finite");

    // No band at all is allowed: pause and resume at the same point.
    let tight = Config { resume_at_battery_pct: 30.0, resume_at_temp_c: 45.0, ..Config::default() };
    let mut g = Guard::new(tight).expect("valid");
    assert!(g.observe(&reading(Some(29.0), Some(false), None)).paused);
    assert!(!g.observe(&reading(Some(30.0), Some(false), None)).paused);
}
