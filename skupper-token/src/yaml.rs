//! YAML reading and writing.
//!
//! This is the only module that names a YAML crate, so that it can be
//! swapped in one place: serde-saphyr by default, serde_norway with the
//! `yaml-serde-norway` feature (kept so the choice can be re-measured: see
//! "YAML crate" in the README). Reading runs with a tight budget: token and
//! record files are small, so aliases, anchors, nesting and document counts
//! are capped far below the crate's defaults, and errors never quote the
//! input back (a token holds a password and a private key).
//!
//! serde_norway cannot be given that budget: it checks only its own fixed
//! limits (nesting depth 128 for values it builds, and at most 100 alias
//! jumps per event in the document), loads a whole document's events before
//! deserializing, and has no limit on anchors, aliases or scalar bytes; it
//! does not refuse duplicate keys in a map (the last one wins). With it,
//! only the input size is capped here ([`MAX_INPUT_BYTES`]); the callers'
//! own size caps (a token file is at most 1 MiB) bound the rest.
//!
//! [`scalar`] writes one YAML scalar the way Go's YAML encoder does for the
//! values in a Skupper Secret: plain when that reads back as the same string,
//! double-quoted otherwise (`"45671"`, `"2026-11-28T10:15:00Z"`, `"yes"`).

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The longest error text passed on; YAML errors can be long.
const MAX_ERROR_CHARS: usize = 300;

/// The most bytes [`from_slice`] reads.
const MAX_INPUT_BYTES: usize = 4 * 1024 * 1024;

#[cfg(not(feature = "yaml-serde-norway"))]
mod backend {
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use super::{MAX_DOCUMENTS, MAX_INPUT_BYTES};

    /// What [`from_slice`] says about input with more than one document
    /// (serde-saphyr's own text names its functions to call instead).
    const MULTIPLE_DOCUMENTS: &str = "the input holds more than one YAML document";

    fn options(max_documents: usize) -> serde_saphyr::Options {
        serde_saphyr::options! {
            budget: serde_saphyr::budget! {
                max_reader_input_bytes: Some(MAX_INPUT_BYTES),
                max_events: 100_000,
                max_aliases: 100,
                max_anchors: 100,
                max_recorded_anchor_events: 10_000,
                max_recorded_anchor_bytes: 1024 * 1024,
                max_depth: 32,
                max_inclusion_depth: 0,
                max_documents: max_documents,
                max_nodes: 50_000,
                max_total_scalar_bytes: 4 * 1024 * 1024,
                max_total_comment_bytes: 1024 * 1024,
                max_merge_keys: 16,
                flow_nesting_limit: 32,
            },
            alias_limits: serde_saphyr::alias_limits! {
                max_total_replayed_events: 10_000,
                max_replay_stack_depth: 16,
                max_alias_expansions_per_anchor: 100,
            },
            // Comments are checked as syntax but not kept.
            emit_comments: false,
            // Never echo input lines (they may hold secrets) in errors.
            with_snippet: false,
            crop_radius: 0,
        }
    }

    pub(super) fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        serde_saphyr::from_slice_with_options(bytes, options(2)).map_err(|e| match e {
            serde_saphyr::Error::MultipleDocuments { .. } => MULTIPLE_DOCUMENTS.to_owned(),
            other => other.to_string(),
        })
    }

    pub(super) fn documents<T: DeserializeOwned>(bytes: &[u8]) -> Result<Vec<T>, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        serde_saphyr::from_multiple_with_options(text, options(MAX_DOCUMENTS))
            .map_err(|e| e.to_string())
    }

    pub(super) fn to_string<T: Serialize>(value: &T) -> Result<String, String> {
        let options = serde_saphyr::ser_options! {
            prefer_block_scalars: false,
        };
        serde_saphyr::to_string_with_options(value, options).map_err(|e| e.to_string())
    }
}

#[cfg(feature = "yaml-serde-norway")]
mod backend {
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    pub(super) fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        // It reads a leading byte order mark as a second document.
        let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
        // Straight into `T`, not through `serde_norway::Value`: a Value
        // would refuse duplicate keys, but it expands every alias, and
        // replaying a large anchor many times is quadratic in the input.
        // Its errors carry no input lines; [`super::redact`] removes the
        // quoted values serde puts in type errors.
        serde_norway::from_slice(bytes).map_err(|e| e.to_string())
    }

    pub(super) fn documents<T: DeserializeOwned>(bytes: &[u8]) -> Result<Vec<T>, String> {
        let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
        serde_norway::Deserializer::from_slice(bytes)
            .take(super::MAX_DOCUMENTS + 1)
            .map(|document| T::deserialize(document).map_err(|e| e.to_string()))
            .collect::<Result<Vec<T>, String>>()
            .and_then(|documents| {
                if documents.len() > super::MAX_DOCUMENTS {
                    Err(format!("more than {} YAML documents", super::MAX_DOCUMENTS))
                } else {
                    Ok(documents)
                }
            })
    }

    pub(super) fn to_string<T: Serialize>(value: &T) -> Result<String, String> {
        serde_norway::to_string(value).map_err(|e| e.to_string())
    }
}

/// The most documents [`documents`] reads (a Skupper 2.x Link file holds
/// one Link per endpoint group and a Secret).
const MAX_DOCUMENTS: usize = 16;

/// Reads one YAML document into `T`, within a small work budget.
///
/// The error is a short description of what is wrong and where (line and
/// column), never a copy of the input.
pub(crate) fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(format!(
            "the input is {} bytes, over the {MAX_INPUT_BYTES}-byte limit",
            bytes.len()
        ));
    }
    backend::from_slice(bytes).map_err(|text| tidy(&text))
}

/// Reads every YAML document in `bytes` into `T`, within the same budget
/// as [`from_slice`] but up to [`MAX_DOCUMENTS`] documents. Errors are
/// shortened and redacted the same way.
pub(crate) fn documents<T: DeserializeOwned>(bytes: &[u8]) -> Result<Vec<T>, String> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(format!(
            "the input is {} bytes, over the {MAX_INPUT_BYTES}-byte limit",
            bytes.len()
        ));
    }
    backend::documents(bytes).map_err(|text| tidy(&text))
}

/// An error text redacted ([`redact`]) and cut to [`MAX_ERROR_CHARS`].
fn tidy(text: &str) -> String {
    let mut text = redact(text);
    if text.chars().count() > MAX_ERROR_CHARS {
        text = text.chars().take(MAX_ERROR_CHARS).collect::<String>() + "...";
    }
    text
}

/// `text` with what serde quotes from the input in type errors (`invalid
/// type: string "..."`) replaced by `"..."`.
fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("string \"") {
        let open = at + "string \"".len();
        out.push_str(&rest[..open]);
        // The value is Debug-escaped: a quote inside it is `\"`.
        let value = &rest[open..];
        let mut end = None;
        let mut escaped = false;
        for (i, c) in value.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        out.push_str("...\"");
        match end {
            Some(i) => rest = &value[i + 1..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// Writes `value` as a YAML document (block style, long strings on one line).
///
/// # Panics
///
/// Only if `value`'s `Serialize` implementation fails or produces something
/// YAML cannot hold (a programming error, not a data error): plain structs,
/// maps, strings and numbers always serialize.
#[allow(dead_code)] // used by other modules (claim records)
pub(crate) fn to_string<T: Serialize>(value: &T) -> String {
    match backend::to_string(value) {
        Ok(text) => text,
        Err(e) => panic!("serializing to YAML failed (a bug in the caller's Serialize impl): {e}"),
    }
}

/// One YAML scalar: `s` itself when it reads back as the same string in
/// YAML 1.1 and 1.2 block context, otherwise `s` double-quoted and escaped.
///
/// This is how Go's YAML encoder (used by Skupper through `sigs.k8s.io/yaml`)
/// writes the values of a Skupper Secret: `1.9.6`, host names, UUIDs, URLs
/// and base64 stay plain; `"45671"`, `"2026-11-28T10:15:00Z"` are quoted.
/// Unusual text (from user-chosen names) is always quoted safely.
pub(crate) fn scalar(s: &str) -> Cow<'_, str> {
    if is_plain_safe(s) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(double_quoted(s))
    }
}

/// Whether `s` can be written as a plain scalar and read back as this string.
/// Deliberately conservative: a small character set, no leading indicator,
/// and nothing a YAML 1.1 or 1.2 reader would take as a number, boolean,
/// null or timestamp.
fn is_plain_safe(s: &str) -> bool {
    let bytes = s.as_bytes();
    let Some(&first) = bytes.first() else {
        return false;
    };
    if !(first.is_ascii_alphanumeric() || first == b'/' || first == b'_') {
        return false;
    }
    if !bytes.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'/' | b':' | b'@' | b'+' | b'=')
    }) {
        return false;
    }
    if s.ends_with(':') {
        return false;
    }
    !is_reserved_word(s) && !looks_numeric(s) && !looks_like_timestamp(s)
}

/// YAML 1.1 and 1.2 booleans and nulls (and float specials without the dot).
fn is_reserved_word(s: &str) -> bool {
    // The longest word is "infinity"; longer scalars (certificates, keys)
    // are not copied to find that out.
    if s.len() > 8 {
        return false;
    }
    matches!(
        s.to_ascii_lowercase().as_str(),
        "y" | "n"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "true"
            | "false"
            | "null"
            | "nan"
            | "inf"
            | "infinity"
    )
}

/// Integers (decimal, 0x, 0o, 0b, with `_`), floats with optional exponent,
/// and YAML 1.1 sexagesimal numbers (`1:20`), with an optional sign.
fn looks_numeric(s: &str) -> bool {
    let t = s.strip_prefix(['+', '-']).unwrap_or(s);
    if t.is_empty() {
        return false;
    }
    let lower = t.get(..2).map(str::to_ascii_lowercase);
    if matches!(lower.as_deref(), Some("0x" | "0o" | "0b")) {
        return true;
    }
    // Every other numeric form is made of these characters only; checking
    // first keeps long base64 values from being copied.
    if !t
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'e' | b'E' | b'+' | b'-' | b':'))
    {
        return false;
    }
    let lower = t.to_ascii_lowercase();
    let u: String = lower.chars().filter(|&c| c != '_').collect();
    if is_decimal_float(&u) {
        return true;
    }
    // Sexagesimal: digits, then one or more ":digits", optional fraction.
    u.contains(':')
        && u.as_bytes()[0].is_ascii_digit()
        && u.split(':')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
}

/// `digits[.digits][e[+-]digits]` or `.digits[...]`, at least one digit.
fn is_decimal_float(u: &str) -> bool {
    let (mantissa, exponent) = match u.find('e') {
        Some(i) => (&u[..i], Some(&u[i + 1..])),
        None => (u, None),
    };
    let mut digits = 0;
    let mut dots = 0;
    for b in mantissa.bytes() {
        match b {
            b'0'..=b'9' => digits += 1,
            b'.' => dots += 1,
            _ => return false,
        }
    }
    if digits == 0 || dots > 1 {
        return false;
    }
    match exponent {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
        }
    }
}

/// Starts like a YAML 1.1 timestamp: four digits and a dash.
fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

/// `s` in double quotes, escaping `"`, `\` and everything outside printable
/// ASCII as `\uXXXX` / `\UXXXXXXXX`.
fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn read_back(value: &str) -> Result<String, String> {
        let doc = format!("k: {}\n", scalar(value));
        let map: BTreeMap<String, String> = from_slice(doc.as_bytes())?;
        map.get("k").cloned().ok_or_else(|| "no k".to_owned())
    }

    #[test]
    fn plain_like_go() {
        for s in [
            "1.9.6",
            "v1.4.2-rc1",
            "67b7e59e-37aa-4179-8191-077b7a0d90d7",
            "https://claims.example.com:8081/6fe5599e-ae73-11ee-b75a-902e1655a5fe",
            "token-claim",
            "kubernetes.io/tls",
            "10.0.0.1",
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==",
            "bUlmWlQwdkkxY1VCaExzZ05mS3ZZMnVh",
            "skupper",
            "west",
        ] {
            assert_eq!(scalar(s), s, "{s} should be plain");
        }
    }

    #[test]
    fn quoted_like_go() {
        for (s, want) in [
            ("45671", "\"45671\""),
            ("2026-11-28T10:15:00Z", "\"2026-11-28T10:15:00Z\""),
            ("yes", "\"yes\""),
            ("No", "\"No\""),
            ("null", "\"null\""),
            ("~", "\"~\""),
            ("", "\"\""),
            ("1.5", "\"1.5\""),
            ("1e5", "\"1e5\""),
            ("0x1F", "\"0x1F\""),
            ("1:20", "\"1:20\""),
            ("1_000", "\"1_000\""),
            ("-1", "\"-1\""),
            ("a b", "\"a b\""),
            ("a: b", "\"a: b\""),
            ("x #y", "\"x #y\""),
            ("key:", "\"key:\""),
            ("-dash", "\"-dash\""),
            ("say \"hi\"\\", "\"say \\\"hi\\\"\\\\\""),
            ("line\nbreak\t", "\"line\\u000Abreak\\u0009\""),
            ("é😀", "\"\\u00E9\\U0001F600\""),
            ("*alias", "\"*alias\""),
            ("&anchor", "\"&anchor\""),
            ("!tag", "\"!tag\""),
            ("[a]", "\"[a]\""),
            ("{a}", "\"{a}\""),
            ("|", "\"|\""),
            (">", "\">\""),
            ("'q'", "\"'q'\""),
            ("%x", "\"%x\""),
            ("@x", "\"@x\""),
            ("`x", "\"`x\""),
            ("---", "\"---\""),
            ("...", "\"...\""),
            (".inf", "\".inf\""),
        ] {
            assert_eq!(scalar(s), want, "{s:?}");
        }
    }

    #[test]
    fn every_scalar_reads_back() {
        for s in [
            "45671",
            "2026-11-28T10:15:00Z",
            "yes",
            "",
            "1.5",
            "a: b",
            "x #y",
            "é😀",
            "line\nbreak\t\r",
            "\u{0}\u{7f}\u{85}\u{2028}\u{feff}",
            "say \"hi\"\\",
            "1.9.6",
            "https://h:1/p",
            "- x",
            "? x",
            "<<",
            "=",
            "~",
            "0o17",
            "+.5",
            "1.",
            ".5",
        ] {
            assert_eq!(read_back(s).as_deref(), Ok(s), "{s:?}");
        }
    }

    #[test]
    fn errors_do_not_echo_input() {
        let err =
            from_slice::<BTreeMap<String, String>>(b"password: [s3cr3tpassw0rd\n").unwrap_err();
        assert!(!err.contains("s3cr3tpassw0rd"), "{err}");
        // A type error: serde would quote the value.
        let err = from_slice::<BTreeMap<String, BTreeMap<String, String>>>(
            b"password: s3cr3t\"passw0rd\n",
        )
        .unwrap_err();
        assert!(!err.contains("passw0rd"), "{err}");
        let err = from_slice::<BTreeMap<String, u32>>(b"n: s3cr3tpassw0rd\n").unwrap_err();
        assert!(!err.contains("s3cr3tpassw0rd"), "{err}");
    }

    #[test]
    fn redact_removes_quoted_values() {
        assert_eq!(
            redact(r#"invalid type: string "a\"b", expected x at line 1"#),
            r#"invalid type: string "...", expected x at line 1"#
        );
        assert_eq!(redact(r#"x: string "open"#), r#"x: string "...""#);
        assert_eq!(redact("no quotes"), "no quotes");
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let big = vec![b' '; MAX_INPUT_BYTES + 1];
        let err = from_slice::<BTreeMap<String, String>>(&big).unwrap_err();
        assert!(err.contains("over the"), "{err}");
    }

    /// Any YAML value, built in full (so aliases are expanded and nesting
    /// is followed, which `IgnoredAny` need not do).
    #[derive(Debug, serde::Deserialize)]
    #[serde(untagged)]
    #[allow(dead_code)]
    enum Any {
        Text(String),
        List(Vec<Any>),
        Map(BTreeMap<String, Any>),
    }

    fn alias_bomb() -> String {
        let mut doc = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = (b'a' + i - 1) as char;
            let cur = (b'a' + i) as char;
            doc.push_str(&format!(
                "{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        doc
    }

    #[test]
    fn alias_bomb_is_refused() {
        let r = from_slice::<BTreeMap<String, Any>>(alias_bomb().as_bytes());
        assert!(r.is_err());
    }

    #[test]
    fn alias_bomb_into_ignored_any() {
        // serde-saphyr counts aliases even when the value is ignored;
        // serde_norway skips them without expanding (no cost either way).
        let r = from_slice::<BTreeMap<String, serde::de::IgnoredAny>>(alias_bomb().as_bytes());
        assert_eq!(r.is_err(), cfg!(not(feature = "yaml-serde-norway")));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let doc = "a: ".to_owned() + &"[".repeat(10_000) + &"]".repeat(10_000);
        let r = from_slice::<BTreeMap<String, Any>>(doc.as_bytes());
        assert!(r.is_err());
        // serde-saphyr stops at depth 32 even for an ignored value;
        // serde_norway only at 128, and only for values it builds.
        let r = from_slice::<BTreeMap<String, serde::de::IgnoredAny>>(doc.as_bytes());
        assert_eq!(r.is_err(), cfg!(not(feature = "yaml-serde-norway")));
        let doc = "a: ".to_owned() + &"[".repeat(64) + &"]".repeat(64);
        let r = from_slice::<BTreeMap<String, Any>>(doc.as_bytes());
        assert_eq!(r.is_err(), cfg!(not(feature = "yaml-serde-norway")));
    }

    #[test]
    fn to_string_writes_block_yaml() {
        let mut m = BTreeMap::new();
        m.insert("b", "45671");
        m.insert("a", "x");
        let quoted = if cfg!(feature = "yaml-serde-norway") {
            "'45671'"
        } else {
            "\"45671\""
        };
        assert_eq!(to_string(&m), format!("a: x\nb: {quoted}\n"));
    }
}
