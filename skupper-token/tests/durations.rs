//! `--expiry` takes Go-style durations, as in the Skupper documentation:
//! `skupper token create secret.yaml --expiry 30m0s --uses 2`, default
//! `15m0s`, `0` for a token that never expires.

use skupper_token::duration::{DurationError, GoDuration};

fn parse(s: &str) -> GoDuration {
    s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

#[test]
fn documented_values() {
    assert_eq!(parse("30m0s").as_duration(), time::Duration::minutes(30));
    assert_eq!(parse("15m0s").to_string(), "15m0s");
    assert!(parse("0").is_zero());
    assert_eq!(parse("0").to_string(), "0s");
}

#[test]
fn prints_like_skupper() {
    for (input, printed) in [
        ("0", "0s"),
        ("0s", "0s"),
        ("15m", "15m0s"),
        ("15m0s", "15m0s"),
        ("1h30m", "1h30m0s"),
        ("90s", "1m30s"),
        ("1.5s", "1.5s"),
        ("500ms", "500ms"),
        ("2h45m10.5s", "2h45m10.5s"),
        ("1.5h", "1h30m0s"),
        ("300ms", "300ms"),
        ("48h", "48h0m0s"),
        ("1h0m0.000000001s", "1h0m0.000000001s"),
        ("1500us", "1.5ms"),
        ("1500ns", "1.5µs"),
        ("7ns", "7ns"),
    ] {
        assert_eq!(parse(input).to_string(), printed, "{input}");
    }
}

#[test]
fn refused_inputs() {
    assert_eq!("".parse::<GoDuration>(), Err(DurationError::Empty));
    assert!(matches!(
        "15".parse::<GoDuration>(),
        Err(DurationError::MissingUnit { input }) if input == "15"
    ));
    assert!(matches!(
        "abc".parse::<GoDuration>(),
        Err(DurationError::Invalid { input }) if input == "abc"
    ));
    assert!(matches!(
        "-5m".parse::<GoDuration>(),
        Err(DurationError::Negative { input }) if input == "-5m"
    ));
    assert!(matches!(
        "1x".parse::<GoDuration>(),
        Err(DurationError::UnknownUnit { unit, input }) if unit == "x" && input == "1x"
    ));
    assert!(matches!(
        "2562048h".parse::<GoDuration>(),
        Err(DurationError::Overflow { .. })
    ));
    assert!(matches!(
        "15 m".parse::<GoDuration>(),
        Err(DurationError::UnknownUnit { .. })
    ));
    assert!(matches!(
        "1d".parse::<GoDuration>(),
        Err(DurationError::UnknownUnit { unit, .. }) if unit == "d"
    ));
    // The largest Go duration is accepted, one nanosecond more is not.
    assert_eq!(
        parse("2562047h47m16.854775807s").to_string(),
        "2562047h47m16.854775807s"
    );
    assert!(matches!(
        "2562047h47m16.854775808s".parse::<GoDuration>(),
        Err(DurationError::Overflow { .. })
    ));
}

#[test]
fn serde_reads_the_string_form() {
    use serde::de::value::{Error, StrDeserializer};
    let d: GoDuration =
        serde::Deserialize::deserialize(StrDeserializer::<Error>::new("1h30m")).unwrap();
    assert_eq!(d, parse("90m"));
    let r: Result<GoDuration, Error> =
        serde::Deserialize::deserialize(StrDeserializer::<Error>::new("-1h"));
    assert!(r.unwrap_err().to_string().contains("cannot be negative"));
}

proptest::proptest! {
    #[test]
    fn printing_round_trips(nanos in 0i64..=i64::MAX) {
        let d = GoDuration::from_duration(time::Duration::nanoseconds(nanos)).unwrap();
        let printed = d.to_string();
        proptest::prop_assert_eq!(parse(&printed), d);
    }

    #[test]
    fn parsing_never_panics(s in ".{0,40}") {
        let _ = s.parse::<GoDuration>();
    }

    #[test]
    fn parsing_durationish_text_never_panics(s in "[-+0-9.a-zµμ]{0,30}") {
        if let Ok(d) = s.parse::<GoDuration>() {
            proptest::prop_assert_eq!(parse(&d.to_string()), d);
        }
    }
}
