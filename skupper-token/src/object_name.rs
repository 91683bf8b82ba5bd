//! Names of sites, links, tokens and claims: Kubernetes object names.

/// Checks that `name` is a Kubernetes object name: 1 to 253 characters from
/// `a-z`, `0-9`, `-` and `.`, starting and ending with a letter or digit.
/// `Err` says what is wrong.
pub(crate) fn check(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 253 {
        return Err("must be 1 to 253 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err("use only lowercase letters, digits, '-' and '.' (a Kubernetes object name)");
    }
    let edge_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if !edge_ok(name.bytes().next()) || !edge_ok(name.bytes().last()) {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}
