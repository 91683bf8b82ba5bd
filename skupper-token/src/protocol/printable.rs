//! Strings a peer sent (site names, link names, reasons), made safe to put
//! in one log line or one message.

/// The longest identifier shown as it is (a DNS name's limit).
const MAX_NAME: usize = 253;

/// The most characters of peer-supplied free text shown.
const MAX_TEXT: usize = 512;

/// A peer-supplied identifier (a site id, site name or link name), safe
/// for one log line: shown as it is when it is 1 to 253 printable ASCII
/// characters without quotes or backslashes, otherwise quoted and escaped
/// (at most 253 characters, then `...`).
pub fn printable(s: &str) -> String {
    let clean = !s.is_empty()
        && s.len() <= MAX_NAME
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    if clean {
        s.to_owned()
    } else {
        let mut q = format!("{:?}", s.chars().take(MAX_NAME).collect::<String>());
        if s.chars().count() > MAX_NAME {
            q.push_str("...");
        }
        q
    }
}

/// Peer-supplied free text (the reason in a goodbye or a refusal), safe
/// for one log line: control characters become spaces, and at most 512
/// characters are kept (then `...`).
pub fn printable_text(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_TEXT)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > MAX_TEXT {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_shown_as_they_are_or_quoted() {
        assert_eq!(printable("west"), "west");
        assert_eq!(printable("a\nb"), "\"a\\nb\"");
        assert_eq!(printable(""), "\"\"");
        assert_eq!(printable("say \"hi\""), "\"say \\\"hi\\\"\"");
        let long = "x".repeat(300);
        assert_eq!(printable(&long), format!("\"{}\"...", "x".repeat(253)));
    }

    #[test]
    fn free_text_loses_its_control_characters_and_its_tail() {
        assert_eq!(
            printable_text("site east\r\nis stopping"),
            "site east  is stopping"
        );
        let long = "y".repeat(600);
        assert_eq!(printable_text(&long), format!("{}...", "y".repeat(512)));
    }
}
