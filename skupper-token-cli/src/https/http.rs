//! The names of the parts of Skupper's claim redemption request, shared by
//! the client ([`crate::runtime::redeem`]) and the server
//! ([`crate::runtime::claims`]), and [`query_escape`] for its query.

/// The request header that names the redeeming site (its id, the issued
/// certificate's common name).
pub const SITE_NAME_HEADER: &str = "skupper-site-name";

/// The query parameter that carries the redeeming site's version.
pub const SITE_VERSION_PARAM: &str = "site-version";

/// Percent-encodes `s` for a query value, like Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_escape_like_go() {
        assert_eq!(query_escape("1.9.6 a/b"), "1.9.6+a%2Fb");
    }
}
