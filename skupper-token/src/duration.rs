//! Go-style durations, as Skupper's `--expiry` flag takes and prints them.
//!
//! Skupper is written in Go and its command line reads durations with Go's
//! `time.ParseDuration` and prints them with `time.Duration.String()`:
//! `15m0s`, `1h30m0s`, `90s`, `1.5h`, `300ms`. [`GoDuration`] does the same,
//! for the non-negative durations a token expiry can take.
//!
//! ```
//! use skupper_token::duration::GoDuration;
//!
//! let d: GoDuration = "1h30m".parse().unwrap();
//! assert_eq!(d.to_string(), "1h30m0s");
//! assert_eq!(GoDuration::parse("90s").unwrap().to_string(), "1m30s");
//! assert!(GoDuration::parse("0").unwrap().is_zero());
//! ```

use std::fmt;
use std::str::FromStr;

/// Nanoseconds in each unit Go accepts.
const NANOSECOND: u64 = 1;
const MICROSECOND: u64 = 1_000 * NANOSECOND;
const MILLISECOND: u64 = 1_000 * MICROSECOND;
const SECOND: u64 = 1_000 * MILLISECOND;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

/// The largest duration Go can hold: `i64::MAX` nanoseconds,
/// `2562047h47m16.854775807s` (about 292 years).
const MAX_NANOS: u64 = i64::MAX as u64;

/// A non-negative duration read and printed the way Go does.
///
/// Parsing follows Go's `time.ParseDuration` (units `ns`, `us`, `µs`, `ms`,
/// `s`, `m`, `h`; fractions such as `1.5h`; several parts such as
/// `2h45m10.5s`; a bare `0`). Negative durations are refused: a token expiry
/// cannot be negative. Printing follows Go's `time.Duration.String()`.
///
/// The value is at most `i64::MAX` nanoseconds, like a Go `time.Duration`.
/// Serde reads and writes it as its string form (`"15m0s"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration(time::Duration);

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The input was empty.
    #[error("empty duration: give a Go-style duration such as 15m0s, 1h30m or 0 (never expires)")]
    Empty,
    /// The input does not have Go's duration syntax.
    #[error(
        "invalid duration {input:?}: expected a Go-style duration such as 15m0s, 1h30m, 90s or 0"
    )]
    Invalid {
        /// The text that was read.
        input: String,
    },
    /// A number has no unit after it (`15` instead of `15m`).
    #[error(
        "missing unit in duration {input:?}: add one of ns, us, ms, s, m, h (for example 15m)"
    )]
    MissingUnit {
        /// The text that was read.
        input: String,
    },
    /// A unit is not one Go knows.
    #[error("unknown unit {unit:?} in duration {input:?}: use one of ns, us, µs, ms, s, m, h")]
    UnknownUnit {
        /// The unit that was not recognised.
        unit: String,
        /// The text that was read.
        input: String,
    },
    /// The duration is negative.
    #[error("negative duration {input:?}: a token expiry cannot be negative (use 0 for a token that never expires)")]
    Negative {
        /// The text (or value) that was read.
        input: String,
    },
    /// The duration does not fit in Go's 64-bit nanosecond count.
    #[error("duration {input:?} is too large: the maximum is 2562047h47m16.854775807s (about 292 years)")]
    Overflow {
        /// The text (or value) that was read.
        input: String,
    },
}

impl GoDuration {
    /// The zero duration, printed `0s` (for a token expiry: never expires).
    pub const ZERO: GoDuration = GoDuration(time::Duration::ZERO);

    /// Reads a Go-style duration such as `15m`, `1h30m`, `1.5s`, `300ms` or `0`.
    ///
    /// Follows Go's `time.ParseDuration`, except that negative durations are
    /// refused ([`DurationError::Negative`]); `-0` is zero, as in Go.
    pub fn parse(input: &str) -> Result<GoDuration, DurationError> {
        let nanos = parse_go_nanos(input)?;
        Ok(GoDuration(nanos_to_duration(nanos)))
    }

    /// A duration of whole seconds (at most about 136 years, always in range).
    pub const fn from_secs(secs: u32) -> GoDuration {
        GoDuration(time::Duration::seconds(secs as i64))
    }

    /// Wraps a [`time::Duration`], refusing negative values and values larger
    /// than Go can hold (`i64::MAX` nanoseconds).
    pub fn from_duration(duration: time::Duration) -> Result<GoDuration, DurationError> {
        if duration.is_negative() {
            return Err(DurationError::Negative {
                input: format!("{duration}"),
            });
        }
        let nanos = duration.whole_nanoseconds();
        if nanos > i128::from(i64::MAX) {
            return Err(DurationError::Overflow {
                input: format!("{duration}"),
            });
        }
        Ok(GoDuration(duration))
    }

    /// The duration as a [`time::Duration`].
    pub const fn as_duration(&self) -> time::Duration {
        self.0
    }

    /// Whether this is the zero duration (a token that never expires).
    pub const fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// The duration in nanoseconds (never more than `i64::MAX`).
    fn nanos(&self) -> u64 {
        // The constructors keep the value in 0..=i64::MAX nanoseconds.
        u64::try_from(self.0.whole_nanoseconds()).unwrap_or(0)
    }
}

fn nanos_to_duration(nanos: u64) -> time::Duration {
    // nanos <= i64::MAX, checked by the parser.
    time::Duration::new(
        (nanos / SECOND) as i64,
        (nanos % SECOND) as i32, // < 1e9, fits
    )
}

/// Go's `time.ParseDuration`, on the magnitude, refusing negative values.
fn parse_go_nanos(orig: &str) -> Result<u64, DurationError> {
    let invalid = || DurationError::Invalid {
        input: orig.to_owned(),
    };
    let overflow = || DurationError::Overflow {
        input: orig.to_owned(),
    };
    if orig.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut s = orig;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    // Go keeps the sum in a u64 and allows up to 1<<63 (for -1<<63).
    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !s.is_empty() {
        let first = s.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let (int_part, rest, int_overflow) = leading_int(s);
        if int_overflow {
            return Err(overflow());
        }
        let pre = rest.len() != s.len();
        s = rest;
        // Fraction part.
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if let Some(rest) = s.strip_prefix('.') {
            let (f, sc, rest2) = leading_fraction(rest);
            post = rest2.len() != rest.len();
            frac = f;
            scale = sc;
            s = rest2;
        }
        if !pre && !post {
            return Err(invalid());
        }
        // Unit: everything up to the next '.' or digit (both ASCII, so the
        // index is a char boundary).
        let end = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if end == 0 {
            return Err(DurationError::MissingUnit {
                input: orig.to_owned(),
            });
        }
        let unit_text = &s[..end];
        s = &s[end..];
        let unit = match unit_text {
            "ns" => NANOSECOND,
            "us" | "\u{00b5}s" | "\u{03bc}s" => MICROSECOND,
            "ms" => MILLISECOND,
            "s" => SECOND,
            "m" => MINUTE,
            "h" => HOUR,
            _ => {
                return Err(DurationError::UnknownUnit {
                    unit: unit_text.to_owned(),
                    input: orig.to_owned(),
                })
            }
        };
        if int_part > LIMIT / unit {
            return Err(overflow());
        }
        let mut v = int_part * unit;
        if frac > 0 {
            // As in Go: float64 is exact enough for fractions of an hour.
            let add = (frac as f64) * (unit as f64 / scale);
            // add <= 3.6e12 (one hour in ns), so the cast is exact enough and in range.
            v = v.checked_add(add as u64).ok_or_else(overflow)?;
            if v > LIMIT {
                return Err(overflow());
            }
        }
        total = total.checked_add(v).ok_or_else(overflow)?;
        if total > LIMIT {
            return Err(overflow());
        }
    }
    if neg {
        if total == 0 {
            return Ok(0);
        }
        return Err(DurationError::Negative {
            input: orig.to_owned(),
        });
    }
    if total > MAX_NANOS {
        return Err(overflow());
    }
    Ok(total)
}

/// Go's `leadingInt`: consumes `[0-9]*`, reporting overflow past 1<<63.
fn leading_int(s: &str) -> (u64, &str, bool) {
    let mut x: u64 = 0;
    let mut i = 0;
    let bytes = s.as_bytes();
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        if x > (1u64 << 63) / 10 {
            return (0, "", true);
        }
        x = x * 10 + u64::from(bytes[i] - b'0');
        if x > 1u64 << 63 {
            return (0, "", true);
        }
        i += 1;
    }
    (x, &s[i..], false)
}

/// Go's `leadingFraction`: consumes `[0-9]*`, ignoring digits past the
/// precision a u64 can hold.
fn leading_fraction(s: &str) -> (u64, f64, &str) {
    let mut x: u64 = 0;
    let mut scale: f64 = 1.0;
    let mut overflow = false;
    let mut i = 0;
    let bytes = s.as_bytes();
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        let c = bytes[i];
        i += 1;
        if overflow {
            continue;
        }
        if x > (i64::MAX as u64) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(c - b'0');
        if y > 1u64 << 63 {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[i..])
}

impl fmt::Display for GoDuration {
    /// Prints like Go's `time.Duration.String()`: `0s`, `1.5s`, `500ms`,
    /// `1m30s`, `1h30m0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_go(self.nanos()))
    }
}

/// Go's `Duration.format` for a non-negative value.
fn format_go(u: u64) -> String {
    if u == 0 {
        return "0s".to_owned();
    }
    if u < SECOND {
        // Smaller than a second: use smaller units, like 1.2ms.
        let (unit, prec) = if u < MICROSECOND {
            ("ns", 0)
        } else if u < MILLISECOND {
            ("\u{00b5}s", 3)
        } else {
            ("ms", 6)
        };
        let (frac, int) = format_fraction(u, prec);
        return format!("{int}{frac}{unit}");
    }
    let (frac, secs_total) = format_fraction(u, 9);
    let secs = secs_total % 60;
    let mins_total = secs_total / 60;
    if mins_total == 0 {
        return format!("{secs}{frac}s");
    }
    let mins = mins_total % 60;
    let hours = mins_total / 60;
    if hours == 0 {
        format!("{mins}m{secs}{frac}s")
    } else {
        format!("{hours}h{mins}m{secs}{frac}s")
    }
}

/// Go's `fmtFrac`: the fraction `v / 10^prec` as `.123` without trailing
/// zeros (empty when zero), and the integer part.
fn format_fraction(mut v: u64, prec: u32) -> (String, u64) {
    let mut digits = Vec::with_capacity(prec as usize);
    let mut printed = false;
    for _ in 0..prec {
        let digit = (v % 10) as u8;
        printed = printed || digit != 0;
        if printed {
            digits.push(b'0' + digit);
        }
        v /= 10;
    }
    if !printed {
        return (String::new(), v);
    }
    digits.push(b'.');
    digits.reverse();
    // Only ASCII digits and '.'.
    (String::from_utf8_lossy(&digits).into_owned(), v)
}

impl FromStr for GoDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GoDuration::parse(s)
    }
}

impl TryFrom<time::Duration> for GoDuration {
    type Error = DurationError;

    fn try_from(duration: time::Duration) -> Result<Self, Self::Error> {
        GoDuration::from_duration(duration)
    }
}

impl From<GoDuration> for time::Duration {
    fn from(d: GoDuration) -> Self {
        d.0
    }
}

impl serde::Serialize for GoDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = GoDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Go-style duration string such as \"15m0s\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<GoDuration, E> {
                GoDuration::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> GoDuration {
        GoDuration::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn nanos(s: &str) -> u64 {
        p(s).nanos()
    }

    #[test]
    fn parses_like_go() {
        // Cases from Go's time package tests (non-negative ones).
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("5s", 5 * SECOND),
            ("30s", 30 * SECOND),
            ("1478s", 1478 * SECOND),
            ("+5s", 5 * SECOND),
            ("-0", 0),
            ("+0", 0),
            ("5.0s", 5 * SECOND),
            ("5.6s", 5 * SECOND + 600 * MILLISECOND),
            ("5.s", 5 * SECOND),
            (".5s", 500 * MILLISECOND),
            ("1.0s", SECOND),
            ("1.00s", SECOND),
            ("1.004s", SECOND + 4 * MILLISECOND),
            ("1.0040s", SECOND + 4 * MILLISECOND),
            ("100.00100s", 100 * SECOND + MILLISECOND),
            ("10ns", 10),
            ("11us", 11 * MICROSECOND),
            ("12µs", 12 * MICROSECOND),
            ("12μs", 12 * MICROSECOND),
            ("13ms", 13 * MILLISECOND),
            ("14s", 14 * SECOND),
            ("15m", 15 * MINUTE),
            ("16h", 16 * HOUR),
            ("3h30m", 3 * HOUR + 30 * MINUTE),
            ("10.5s4m", 4 * MINUTE + 10 * SECOND + 500 * MILLISECOND),
            (
                "1h2m3s4ms5us6ns",
                HOUR + 2 * MINUTE + 3 * SECOND + 4 * MILLISECOND + 5 * MICROSECOND + 6,
            ),
            (
                "39h9m14.425s",
                39 * HOUR + 9 * MINUTE + 14 * SECOND + 425 * MILLISECOND,
            ),
            ("52763797000ns", 52763797000),
            ("0.3333333333333333333h", 20 * MINUTE),
            ("9007199254740993ns", (1 << 53) + 1),
            ("9223372036854775807ns", i64::MAX as u64),
            ("9223372036854775.807us", i64::MAX as u64),
            ("9223372036s854ms775us807ns", i64::MAX as u64),
            ("0.100000000000000000000h", 6 * MINUTE),
            (
                "0.830103483285477580700h",
                49 * MINUTE + 48 * SECOND + 372539827,
            ),
            ("15m0s", 15 * MINUTE),
            ("30m0s", 30 * MINUTE),
            ("1h30m", 90 * MINUTE),
            ("90s", 90 * SECOND),
            ("1.5h", 90 * MINUTE),
            ("300ms", 300 * MILLISECOND),
            (
                "2h45m10.5s",
                2 * HOUR + 45 * MINUTE + 10 * SECOND + 500 * MILLISECOND,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(nanos(input), *want, "{input}");
        }
    }

    #[test]
    fn refuses_what_go_refuses() {
        assert_eq!(GoDuration::parse(""), Err(DurationError::Empty));
        for input in ["3", "15", "1.5", "0.5"] {
            assert!(
                matches!(
                    GoDuration::parse(input),
                    Err(DurationError::MissingUnit { .. })
                ),
                "{input}"
            );
        }
        for input in [
            "-", "+", "s", ".", ".s", "+.s", "abc", "1h 30m", " 1h", "1h-5m", "1e3s",
        ] {
            let err = GoDuration::parse(input).unwrap_err();
            assert!(
                matches!(
                    err,
                    DurationError::Invalid { .. }
                        | DurationError::UnknownUnit { .. }
                        | DurationError::MissingUnit { .. }
                ),
                "{input}: {err:?}"
            );
        }
        assert!(matches!(
            GoDuration::parse("1x"),
            Err(DurationError::UnknownUnit { ref unit, .. }) if unit == "x"
        ));
        assert!(matches!(
            GoDuration::parse("3000000h"),
            Err(DurationError::Overflow { .. })
        ));
        assert!(matches!(
            GoDuration::parse("9223372036854775808ns"),
            Err(DurationError::Overflow { .. })
        ));
        assert!(matches!(
            GoDuration::parse("9223372036854775807ns1ns"),
            Err(DurationError::Overflow { .. })
        ));
        assert!(matches!(
            GoDuration::parse("99999999999999999999999s"),
            Err(DurationError::Overflow { .. })
        ));
        for input in ["-5m", "-1ns", "-1h30m"] {
            assert!(
                matches!(
                    GoDuration::parse(input),
                    Err(DurationError::Negative { .. })
                ),
                "{input}"
            );
        }
    }

    #[test]
    fn error_messages_name_the_input() {
        let msg = GoDuration::parse("-5m").unwrap_err().to_string();
        assert!(
            msg.contains("\"-5m\"") && msg.contains("cannot be negative"),
            "{msg}"
        );
        let msg = GoDuration::parse("15").unwrap_err().to_string();
        assert!(
            msg.contains("\"15\"") && msg.contains("missing unit"),
            "{msg}"
        );
        let msg = GoDuration::parse("1x").unwrap_err().to_string();
        assert!(msg.contains("\"x\"") && msg.contains("\"1x\""), "{msg}");
        let msg = GoDuration::parse("").unwrap_err().to_string();
        assert!(msg.contains("empty duration"), "{msg}");
    }

    #[test]
    fn prints_like_go() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1100, "1.1\u{00b5}s"),
            (2200 * MICROSECOND, "2.2ms"),
            (500 * MILLISECOND, "500ms"),
            (3300 * MILLISECOND, "3.3s"),
            (4 * MINUTE + 5 * SECOND, "4m5s"),
            (4 * MINUTE + 5001 * MILLISECOND, "4m5.001s"),
            (5 * HOUR + 6 * MINUTE + 7001 * MILLISECOND, "5h6m7.001s"),
            (8 * MINUTE + 1, "8m0.000000001s"),
            (i64::MAX as u64, "2562047h47m16.854775807s"),
            (15 * MINUTE, "15m0s"),
            (HOUR, "1h0m0s"),
            (SECOND, "1s"),
            (1500 * MILLISECOND, "1.5s"),
        ];
        for (n, want) in cases {
            assert_eq!(format_go(*n), *want, "{n}");
            assert_eq!(nanos_to_go(*n).to_string(), *want);
        }
    }

    fn nanos_to_go(n: u64) -> GoDuration {
        GoDuration(nanos_to_duration(n))
    }

    #[test]
    fn parse_then_print() {
        for (input, printed) in [
            ("0", "0s"),
            ("15m", "15m0s"),
            ("15m0s", "15m0s"),
            ("30m0s", "30m0s"),
            ("1h", "1h0m0s"),
            ("1h30m", "1h30m0s"),
            ("90s", "1m30s"),
            ("1.5s", "1.5s"),
            ("1.5h", "1h30m0s"),
            ("500ms", "500ms"),
            ("300ms", "300ms"),
            ("2h45m10.5s", "2h45m10.5s"),
            ("1000us", "1ms"),
            ("1us", "1µs"),
        ] {
            let d = p(input);
            assert_eq!(d.to_string(), printed, "{input}");
            // Printing is a fixed point of parsing.
            assert_eq!(p(printed), d);
        }
    }

    #[test]
    fn conversions() {
        assert!(GoDuration::ZERO.is_zero());
        assert!(p("0s").is_zero());
        assert!(!p("1ns").is_zero());
        assert_eq!(p("15m").as_duration(), time::Duration::minutes(15));
        assert_eq!(GoDuration::from_secs(90), p("90s"));
        assert_eq!(
            GoDuration::from_duration(time::Duration::minutes(15)).unwrap(),
            p("15m")
        );
        assert!(matches!(
            GoDuration::from_duration(time::Duration::seconds(-1)),
            Err(DurationError::Negative { .. })
        ));
        assert!(matches!(
            GoDuration::from_duration(time::Duration::seconds(i64::MAX)),
            Err(DurationError::Overflow { .. })
        ));
        let max = GoDuration::from_duration(time::Duration::nanoseconds(i64::MAX)).unwrap();
        assert_eq!(max.to_string(), "2562047h47m16.854775807s");
        assert_eq!(p(&max.to_string()), max);
        let t: time::Duration = p("1h").into();
        assert_eq!(t, time::Duration::hours(1));
        assert_eq!("1h".parse::<GoDuration>().unwrap(), p("60m"));
    }

    #[test]
    fn serde_string_form() {
        use std::collections::BTreeMap;
        let mut m = BTreeMap::new();
        m.insert("expiry", p("15m"));
        m.insert("never", GoDuration::ZERO);
        let text = crate::yaml::to_string(&m);
        assert_eq!(text, "expiry: 15m0s\nnever: 0s\n");
        let back: BTreeMap<String, GoDuration> = crate::yaml::from_slice(text.as_bytes()).unwrap();
        assert_eq!(back["expiry"], p("15m"));
        assert!(back["never"].is_zero());
        let bad = crate::yaml::from_slice::<BTreeMap<String, GoDuration>>(b"expiry: -5m\n");
        assert!(bad.unwrap_err().contains("cannot be negative"));
    }

    #[test]
    fn ordering() {
        assert!(p("1m") < p("61s"));
        assert!(p("1h") > p("59m59.999999999s"));
    }
}
