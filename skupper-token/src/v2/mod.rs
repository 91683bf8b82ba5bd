//! Skupper 2.x token files: AccessTokens and Link files.
//!
//! Skupper 2.x (API `skupper.io/v2alpha1`) replaced 1.x claim and cert
//! tokens with:
//!
//! - an [`AccessToken`] (`skupper token issue FILE`), the counterpart of a
//!   claim token: the grant server's URL, the CA to trust for it, a secret
//!   [`AccessCode`], and the cost of the links it makes;
//! - a [`LinkFile`] (`skupper link generate`, and the body of a grant
//!   server's answer), the counterpart of a cert token: one [`Link`] per
//!   endpoint group and the [`TlsSecret`] holding the certificate the Links
//!   use.
//!
//! Around them:
//!
//! - access grants ([`grant`]): what the issuing site keeps about each
//!   AccessToken it issued ([`GrantRecord`]) and the rules for redeeming
//!   one ([`GrantRecord::check`], [`GrantError`] with Skupper's statuses
//!   and bodies), and redemption as the issuing site runs it
//!   ([`grant_redeem`]);
//! - redemption, the redeeming site's side ([`redeem`]): the request to
//!   send ([`GrantRequest`]) and what the grant server's answer means
//!   ([`GrantResponse::interpret`]).
//!
//! Decoding reads untrusted bytes and never panics: input over
//! [`MAX_TOKEN_BYTES`](crate::token::MAX_TOKEN_BYTES) is refused, YAML is read
//! within a small budget and never quoted back in errors, certificates are
//! checked to be X.509 and keys to be PEM private keys, and every error is a
//! [`DecodeError`](crate::token::DecodeError) naming the resource, the YAML
//! document and the field. Encoding writes exactly what Skupper writes (keys
//! in alphabetical order, ports as quoted strings, empty fields left out),
//! and `decode(encode(x)) == x`.
//!
//! [`TokenFile::decode`](crate::token::TokenFile::decode) reads any token
//! file, 1.x or 2.x.
//!
//! ```
//! use skupper_token::v2::{AccessToken, LinkFile};
//!
//! let file = include_bytes!("../../tests/data/v2/v2-access-token.yaml");
//! let token = AccessToken::decode(file).unwrap();
//! assert_eq!(token.name, "grant1");
//! assert_eq!(token.link_cost, 1);
//! assert_eq!(format!("{:?}", token.code), "AccessCode(<redacted>)");
//! assert_eq!(token.encode().as_bytes(), &file[..]);
//!
//! let file = include_bytes!("../../tests/data/v2/v2-link-generate.yaml");
//! let links = LinkFile::decode(file).unwrap();
//! assert_eq!(links.links[0].endpoints[0].port, 21462);
//! assert_eq!(links.encode_generated().as_bytes(), &file[..]);
//! ```

use std::borrow::Cow;
use std::fmt;

use crate::random::{self, Random};

mod access_token;
pub mod grant;
pub mod grant_redeem;
mod link;
mod link_file;
mod raw;
pub mod redeem;
mod secret;
mod write;

pub use access_token::AccessToken;
pub use grant::{GrantError, GrantOptions, GrantRecord, GrantState};
pub use grant_redeem::GrantRedemption;
pub use link::{Link, LinkEndpoint};
pub use link_file::LinkFile;
pub use redeem::{GrantRefused, GrantRequest, GrantResponse};
pub use secret::TlsSecret;

/// The `apiVersion` of Skupper 2.x resources.
pub const API_VERSION: &str = "skupper.io/v2alpha1";

/// `kind` of an AccessToken.
pub const ACCESS_TOKEN_KIND: &str = "AccessToken";
/// `kind` of an AccessGrant.
pub const ACCESS_GRANT_KIND: &str = "AccessGrant";
/// `kind` of a Link.
pub const LINK_KIND: &str = "Link";

/// Length of an access code this crate makes, as Skupper's.
pub const CODE_LEN: usize = random::PASSWORD_LEN;

/// The secret of an AccessToken (`spec.code`), posted to the grant server to
/// redeem it. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct AccessCode(String);

impl AccessCode {
    /// Wraps a code.
    pub fn new(code: impl Into<String>) -> AccessCode {
        AccessCode(code.into())
    }

    /// A fresh code from `rng`: [`CODE_LEN`] characters from `[a-zA-Z0-9]`,
    /// as Skupper makes them.
    pub fn generate(rng: &mut dyn Random) -> AccessCode {
        AccessCode(random::password(rng))
    }

    /// The code itself. Handle with care: never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for AccessCode {
    fn from(code: String) -> AccessCode {
        AccessCode(code)
    }
}

impl From<&str> for AccessCode {
    fn from(code: &str) -> AccessCode {
        AccessCode(code.to_owned())
    }
}

impl fmt::Debug for AccessCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessCode(<redacted>)")
    }
}

impl fmt::Display for AccessCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessCode(<redacted>)")
    }
}

/// The longest piece of untrusted text (a name, a kind) put in an error.
const MAX_QUOTED_CHARS: usize = 64;

/// `text` cut to [`MAX_QUOTED_CHARS`] characters for an error message.
pub(crate) fn shorten(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        None => Cow::Borrowed(text),
        Some((at, _)) => Cow::Owned(format!("{}...", &text[..at])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;

    #[test]
    fn codes_are_redacted() {
        let code = AccessCode::from("qDjNTlhWXkVbesDnBcqs3vQi");
        assert_eq!(format!("{code:?}"), "AccessCode(<redacted>)");
        assert_eq!(format!("{code}"), "AccessCode(<redacted>)");
        assert_eq!(code.expose(), "qDjNTlhWXkVbesDnBcqs3vQi");
    }

    #[test]
    fn generated_codes_look_like_skuppers() {
        let mut rng = SeededRandom::new(7);
        let a = AccessCode::generate(&mut rng);
        let b = AccessCode::generate(&mut rng);
        assert_ne!(a, b);
        for code in [a, b] {
            assert_eq!(code.expose().len(), CODE_LEN);
            assert!(code.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn long_text_is_shortened() {
        assert_eq!(shorten("abc"), "abc");
        let long = "é".repeat(100);
        assert_eq!(shorten(&long), format!("{}...", "é".repeat(64)));
    }
}
