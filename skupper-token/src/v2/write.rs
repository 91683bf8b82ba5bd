//! Writing Skupper 2.x documents the way Skupper does (Go's YAML encoder
//! behind `sigs.k8s.io/yaml`): keys in alphabetical order, two-space
//! indentation, lists not indented under their key, multi-line text as a
//! literal block.

use crate::token::put;

/// Writes `<indent><key>: <value>\n`, the value as a literal block (`|`)
/// when it is multi-line text that one reads back unchanged (PEM
/// certificates), otherwise as one scalar.
pub(super) fn put_text(out: &mut String, indent: usize, key: &str, value: &str) {
    if !literal_block_safe(value) {
        put(out, indent, key, value);
        return;
    }
    push_indent(out, indent);
    out.push_str(key);
    out.push_str(": |\n");
    for line in value.lines() {
        if !line.is_empty() {
            push_indent(out, indent + 2);
            out.push_str(line);
        }
        out.push('\n');
    }
}

/// Writes `<indent><key>: <n>\n`.
pub(super) fn put_number(out: &mut String, indent: usize, key: &str, n: u32) {
    push_indent(out, indent);
    out.push_str(key);
    out.push_str(": ");
    out.push_str(&n.to_string());
    out.push('\n');
}

fn push_indent(out: &mut String, indent: usize) {
    for _ in 0..indent {
        out.push(' ');
    }
}

/// Whether `value` reads back unchanged from a `|` block: several lines of
/// printable ASCII ending in exactly one newline, the first line not empty
/// and not starting with a space (the block's indentation is taken from it),
/// no line ending in a space.
fn literal_block_safe(value: &str) -> bool {
    let Some(body) = value.strip_suffix('\n') else {
        return false;
    };
    if body.ends_with('\n') || !body.contains('\n') {
        return false;
    }
    if !body
        .bytes()
        .all(|b| b == b'\n' || (b' '..=b'~').contains(&b))
    {
        return false;
    }
    let Some(first) = body.lines().next() else {
        return false;
    };
    if first.is_empty() || first.starts_with(' ') {
        return false;
    }
    body.lines().all(|line| !line.ends_with(' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> String {
        let mut out = String::new();
        put_text(&mut out, 2, "ca", value);
        out
    }

    #[test]
    fn pem_is_a_literal_block() {
        assert_eq!(
            text("-----BEGIN X-----\nAAAA\n\n-----END X-----\n"),
            "  ca: |\n    -----BEGIN X-----\n    AAAA\n\n    -----END X-----\n"
        );
    }

    #[test]
    fn other_text_is_one_scalar() {
        // No final newline, two of them, one line, CRLF, a leading space,
        // a trailing space, non-ASCII: quoted.
        for value in [
            "a\nb",
            "a\nb\n\n",
            "a\n",
            "a\r\nb\r\n",
            " a\nb\n",
            "a \nb\n",
            "é\nb\n",
            "\na\n",
        ] {
            assert!(text(value).starts_with("  ca: \""), "{value:?}");
        }
        assert_eq!(text("abc"), "  ca: abc\n");
    }
}
