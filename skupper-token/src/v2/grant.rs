//! Access grants: what a Skupper 2.x issuing site keeps about each
//! AccessToken it issued, and the rules for redeeming one.
//!
//! The 2.x counterpart of [`crate::claim`]. A [`GrantRecord`] never holds
//! the access code: it holds an HMAC-SHA-256 tag of it under a random
//! per-grant key, compared with [`ring::hmac::verify`] (constant-time).
//! Codes are 24 characters drawn uniformly from 62 symbols (about 143
//! bits), so a fast keyed hash is enough: there is nothing to brute-force.
//!
//! # Redemption order
//!
//! Skupper's grant server checks, in order: the method (405), the body
//! (400), the grant id (404 `No such claim`), expiry (404 `No such
//! claim`), the redemptions left (404 `No such access granted`), and only
//! then the code (403). So anyone who knows a grant's URL learns whether it
//! expired or was used up without knowing its code. This crate checks the
//! code right after the grant id, before anything else about the grant is
//! revealed, as it does for 1.x claims: a wrong code is always 403, whatever
//! the grant's state. The statuses and bodies of every case are Skupper's,
//! unchanged ([`GrantError::http_status`], [`GrantError::http_body`]).
//!
//! A grant server using this module answers a request in this order:
//!
//! 1. not `POST`: [`GrantError::NotPost`];
//! 2. the body cannot be read: [`GrantError::BodyNotValid`];
//! 3. no grant of that id (or one voided by a revoke-access):
//!    [`GrantError::NoSuchGrant`];
//! 4. [`GrantRecord::check`]: the code, then expiry, then redemptions;
//! 5. the `name` and `subject` headers, with their fallbacks to the grant's
//!    name: [`redemption_names`] (a 400 that says only what is wrong with
//!    what the caller sent);
//! 6. the certificate (CN = the subject, SANs = the site's hosts) and the
//!    Secret and Links named from the name are made, then ONE
//!    compare-and-swap of the record spends the redemption
//!    ([`GrantRecord::spent`]) *and* records the certificate (a lost race
//!    is tried again from step 3; giving up is [`GrantError::Conflict`]);
//! 7. only after that write are the Links handed out: 200. A certificate
//!    whose write failed is never handed out, so a failure can waste a
//!    redemption but never grant an extra one.
//!
//! [`crate::v2::grant_redeem`] runs steps 3 to 7 for a site
//! ([`crate::site::Site::redeem_grant`]); an HTTP server adds steps 1 and
//! 2.
//!
//! ```
//! use skupper_token::random::SeededRandom;
//! use skupper_token::time::{Duration, OffsetDateTime};
//! use skupper_token::v2::grant::redemption_names;
//! use skupper_token::v2::{GrantError, GrantOptions, GrantRecord};
//!
//! let now = OffsetDateTime::from_unix_timestamp(1_790_000_000)?;
//! let mut rng = SeededRandom::new(1); // a real site passes an OS CSPRNG
//! let (grant, code) = GrantRecord::new(&GrantOptions::new("west"), now, &mut rng)?;
//! assert_eq!(grant.redemptions_allowed, 1);
//! assert_eq!(grant.expires_at, now + Duration::minutes(15));
//!
//! // A guess is refused, whatever the grant's state.
//! let refused = grant.check(b"guess", now).unwrap_err();
//! assert_eq!(refused.http_status(), 403);
//! assert_eq!(refused.http_body(), "Redemption of access token refused\n");
//!
//! // The code redeems it once.
//! grant.check(code.expose().as_bytes(), now)?;
//! let names = redemption_names(&grant.id, &grant.name, Some("west"), Some("6b0e4f8a-site"))?;
//! assert_eq!(names.subject, "6b0e4f8a-site");
//! let grant = grant.spent()?; // written with one compare-and-swap
//! let again = grant.check(code.expose().as_bytes(), now).unwrap_err();
//! assert_eq!((again.http_status(), again.http_body()), (404, "No such access granted\n".into()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Zero redemptions
//!
//! Skupper 2.x has no "unlimited" grant: a grant with `redemptionsAllowed:
//! 0` has no redemptions left (its server answers `No such access granted`
//! at once; Skupper's #2087 was about grants that ended up that way).
//! [`GrantRecord::new`] therefore refuses 0
//! ([`GrantOptionsError::NoRedemptions`]): such a grant would be useless,
//! and reading 0 as "unlimited", as 1.x claims do, would make a 2.x file
//! mean something else here than on a Skupper site. A stored record with 0
//! allowed (written by hand) reads as "none left", as in Skupper.

use base64::Engine as _;
use ring::hmac;
use time::OffsetDateTime;

use super::AccessCode;
use crate::duration::GoDuration;
use crate::random::{self, Random};
use crate::site_id::{self, SiteIdError};
use crate::store::StoreError;

pub use crate::records::{GrantRecord, GrantState, GRANT_RECORD_SCHEMA};

/// Default redemptions of a grant: 1, as `skupper token issue`'s.
pub const DEFAULT_REDEMPTIONS: u32 = 1;

/// Default `spec.linkCost` of an AccessToken: 1, as `skupper token
/// issue`'s `--cost`.
pub const DEFAULT_LINK_COST: u32 = 1;

/// Default expiration window of a grant: 15 minutes, as `skupper token
/// issue`'s.
pub const DEFAULT_EXPIRATION_WINDOW: time::Duration = time::Duration::minutes(15);

/// The longest grant, Secret or Link name [`check_name`] accepts: a
/// Kubernetes label's 63, so that a name standing in for the subject (see
/// [`redemption_names`]) fits a certificate's common name.
pub const MAX_NAME_LEN: usize = 63;

/// What to make a grant with (`token issue`'s options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantOptions {
    /// The grant's name: the AccessToken's `metadata.name`, and the name of
    /// the Secret and Links a redemption returns when the redeemer sends
    /// none ([`check_name`]).
    pub name: String,
    /// How many redemptions the grant allows, from 1; see the module
    /// documentation for why 0 is refused.
    pub redemptions_allowed: u32,
    /// How long after its creation the grant can be redeemed; over 0.
    pub expiration_window: time::Duration,
    /// The issuing site's CA generation now; a revoke-access voids grants
    /// of earlier generations. [`crate::site::Site::issue_grant`] sets it
    /// to the site's.
    pub ca_generation: u32,
    /// The AccessToken's `spec.linkCost`: the cost of the links its
    /// redemption makes (0: the costs the grant server gives). Not kept in
    /// the grant record.
    pub link_cost: u32,
}

impl GrantOptions {
    /// Options for a grant called `name` with Skupper's defaults: 1
    /// redemption within 15 minutes, link cost 1, CA generation 0.
    pub fn new(name: impl Into<String>) -> GrantOptions {
        GrantOptions {
            name: name.into(),
            redemptions_allowed: DEFAULT_REDEMPTIONS,
            expiration_window: DEFAULT_EXPIRATION_WINDOW,
            ca_generation: 0,
            link_cost: DEFAULT_LINK_COST,
        }
    }
}

/// Why a grant cannot be made with these options.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantOptionsError {
    /// The grant's name is not a usable name.
    #[error("grant name {name:?} is not valid: {source}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        source: NameError,
    },
    /// 0 redemptions allowed.
    #[error("grant {name:?} would allow 0 redemptions: a Skupper 2.x grant allows at least 1 (0 is not \"unlimited\" in 2.x; it means none left)")]
    NoRedemptions {
        /// The grant's name.
        name: String,
    },
    /// The expiration window is 0 or negative.
    #[error("grant {name:?} would expire when it is made: its expiration window is {window}; give a window over 0 (a Skupper 2.x grant always expires)")]
    NoWindow {
        /// The grant's name.
        name: String,
        /// The window given.
        window: time::Duration,
    },
    /// The expiration window is longer than a date can hold or Go can read.
    #[error("grant {name:?}: its expiration window of {window} is too long")]
    WindowTooLong {
        /// The grant's name.
        name: String,
        /// The window given.
        window: time::Duration,
    },
}

impl GrantRecord {
    /// A new grant: its id (a UUID) and its code ([`AccessCode::generate`],
    /// 24 characters) from `rng`, expiring `options.expiration_window`
    /// after `now`. Returns the record, which keeps only a keyed hash of the
    /// code, and the code, to write into the AccessToken and then forget.
    pub fn new(
        options: &GrantOptions,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<(GrantRecord, AccessCode), GrantOptionsError> {
        let name = &options.name;
        check_name(name).map_err(|source| GrantOptionsError::InvalidName {
            name: name.clone(),
            source,
        })?;
        if options.redemptions_allowed == 0 {
            return Err(GrantOptionsError::NoRedemptions { name: name.clone() });
        }
        let window = options.expiration_window;
        if !window.is_positive() {
            return Err(GrantOptionsError::NoWindow {
                name: name.clone(),
                window,
            });
        }
        let too_long = || GrantOptionsError::WindowTooLong {
            name: name.clone(),
            window,
        };
        let expiration_window = GoDuration::from_duration(window).map_err(|_| too_long())?;
        let expires_at = now.checked_add(window).ok_or_else(too_long)?;

        let id = random::uuid_v4(rng).to_string();
        let code = AccessCode::generate(rng);
        let mut key = [0u8; 32];
        rng.fill(&mut key);
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &key),
            code.expose().as_bytes(),
        );
        let b64 = base64::engine::general_purpose::STANDARD;
        let record = GrantRecord {
            schema_version: GRANT_RECORD_SCHEMA,
            id,
            name: name.clone(),
            redemptions_allowed: options.redemptions_allowed,
            redemptions_made: 0,
            expiration_window,
            expires_at,
            code_key: b64.encode(key),
            code_tag: b64.encode(tag.as_ref()),
            ca_generation: options.ca_generation,
            created_at: now,
            failed_attempts: 0,
            last_failed_attempt: None,
            issued: Vec::new(),
        };
        Ok((record, code))
    }

    /// Checks a redemption attempt (`code`: the request body, raw), in the
    /// order that reveals nothing to a caller without the code: the code
    /// first ([`GrantError::WrongCode`], 403), then expiry
    /// ([`GrantError::Expired`], 404 `No such claim`), then the redemptions
    /// left ([`GrantError::UsedUp`], 404 `No such access granted`).
    pub fn check(&self, code: &[u8], now: OffsetDateTime) -> Result<(), GrantError> {
        if !self.code_matches(code) {
            return Err(GrantError::WrongCode {
                grant: self.id.clone(),
                name: self.name.clone(),
            });
        }
        match self.state(now) {
            GrantState::Active => Ok(()),
            GrantState::Expired => Err(GrantError::Expired {
                grant: self.id.clone(),
                name: self.name.clone(),
                expired_at: self.expires_at,
                now,
            }),
            GrantState::UsedUp => Err(self.used_up()),
        }
    }

    /// This record after one more redemption, to be written with one
    /// compare-and-swap in place of `self` before the certificate is
    /// issued. Refuses ([`GrantError::UsedUp`]) when no redemption is left,
    /// so that however calls interleave the redemptions made never exceed
    /// the redemptions allowed.
    pub fn spent(&self) -> Result<GrantRecord, GrantError> {
        if self.redemptions_left() == 0 {
            return Err(self.used_up());
        }
        let mut next = self.clone();
        next.redemptions_made += 1;
        Ok(next)
    }

    fn used_up(&self) -> GrantError {
        GrantError::UsedUp {
            grant: self.id.clone(),
            name: self.name.clone(),
            allowed: self.redemptions_allowed,
        }
    }
}

/// Why a name cannot name a grant, a Secret or a Link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("the name is empty")]
    Empty,
    /// The name is too long.
    #[error("the name is {len} characters long; a name is at most {max}", max = MAX_NAME_LEN)]
    TooLong {
        /// Its length, in bytes.
        len: usize,
    },
    /// The name has a character other than a lowercase letter, a digit,
    /// `-` or `.`.
    #[error("the name has {character:?} at position {position}; a name holds only lowercase letters, digits, '-' and '.' (a Kubernetes object name)")]
    BadCharacter {
        /// The first such character (shown escaped).
        character: char,
        /// Its position, counting characters from 1.
        position: usize,
    },
    /// The name starts or ends with `-` or `.`.
    #[error("the name must start and end with a letter or digit")]
    BadEdge,
}

/// Checks that `name` can name a grant, and the Secret and Links a
/// redemption returns: a Kubernetes object name (lowercase letters, digits,
/// `-` and `.`, starting and ending with a letter or digit), as Skupper's
/// resources are and as this project's link names are, of 1 to
/// [`MAX_NAME_LEN`] characters.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some((i, character)) = name
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
    {
        return Err(NameError::BadCharacter {
            character,
            position: i + 1,
        });
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { len: name.len() });
    }
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if !edge(name.bytes().next()) || !edge(name.bytes().last()) {
        return Err(NameError::BadEdge);
    }
    Ok(())
}

/// The names a redemption is made under, from its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedemptionNames {
    /// The name of the Secret and Links returned (the `name` header, or the
    /// grant's name).
    pub name: String,
    /// The issued certificate's common name: the redeeming site's id (the
    /// `subject` header, or [`Self::name`]).
    pub subject: String,
}

/// The `name` and `subject` of a redemption to grant `grant` (its id)
/// named `grant_name`, from the request's headers, with Skupper's
/// fallbacks: a missing or empty `name` is the grant's name; a missing or
/// empty `subject` is the name.
///
/// Called once the grant is found and its code checked (the fallback needs
/// the grant's name). Refuses (400) a name that [`check_name`] refuses
/// ([`GrantError::InvalidName`]) and a subject that
/// [`site_id::check`] refuses ([`GrantError::InvalidSubject`]): the subject
/// becomes a certificate's common name and the site id its links present,
/// so an unusable one would burn a redemption on a certificate no listener
/// accepts. Skupper does not check these; its own sites always send a
/// Kubernetes name and a UUID, which pass.
pub fn redemption_names(
    grant: &str,
    grant_name: &str,
    name_header: Option<&str>,
    subject_header: Option<&str>,
) -> Result<RedemptionNames, GrantError> {
    let name = match name_header {
        Some(name) if !name.is_empty() => name,
        _ => grant_name,
    };
    check_name(name).map_err(|source| GrantError::InvalidName {
        grant: grant.to_owned(),
        name: super::shorten(name).into_owned(),
        source,
    })?;
    let subject = match subject_header {
        Some(subject) if !subject.is_empty() => subject,
        _ => name,
    };
    site_id::check(subject).map_err(|source| GrantError::InvalidSubject {
        grant: grant.to_owned(),
        source,
    })?;
    Ok(RedemptionNames {
        name: name.to_owned(),
        subject: subject.to_owned(),
    })
}

/// Why a grant was not redeemed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// The request's method is not `POST`.
    #[error("grant redemption refused: method {method} (only POST is supported)")]
    NotPost {
        /// The method used.
        method: String,
    },
    /// The request's body could not be read.
    #[error("redemption of grant {grant:?} refused: the request body could not be read: {reason}")]
    BodyNotValid {
        /// The grant id asked for.
        grant: String,
        /// Why.
        reason: String,
    },
    /// The `name` header (or the grant's name it falls back to) cannot name
    /// a Secret and Links ([`check_name`]); nothing was spent.
    #[error("redemption of grant {grant:?} refused: the name {name:?} (the name header) cannot name a Secret and Links: {source}")]
    InvalidName {
        /// The grant id asked for.
        grant: String,
        /// The name (shortened).
        name: String,
        /// What is wrong with it.
        source: NameError,
    },
    /// The `subject` header (or the name it falls back to) cannot be a site
    /// id ([`site_id::check`]); nothing was spent.
    #[error("redemption of grant {grant:?} refused: the redeeming site's id (the subject header) cannot name a certificate: {source}")]
    InvalidSubject {
        /// The grant id asked for.
        grant: String,
        /// What is wrong with it.
        source: SiteIdError,
    },
    /// No grant of that id (never made, or voided when access was
    /// revoked).
    #[error("No such claim: grant {grant:?} does not exist on this site (never issued, or voided when access to the site was revoked)")]
    NoSuchGrant {
        /// The grant id asked for.
        grant: String,
    },
    /// The code does not match.
    #[error("Redemption of access token refused: wrong code for grant {name:?} ({grant})")]
    WrongCode {
        /// The grant id.
        grant: String,
        /// The grant's name.
        name: String,
    },
    /// The grant's expiration time has passed.
    #[error("No such claim: grant {name:?} ({grant}) expired at {}", crate::claim::rfc3339(.expired_at))]
    Expired {
        /// The grant id.
        grant: String,
        /// The grant's name.
        name: String,
        /// When it expired.
        expired_at: OffsetDateTime,
        /// The time of the attempt.
        now: OffsetDateTime,
    },
    /// Every redemption the grant allows was made.
    #[error("No such access granted: grant {name:?} ({grant}) has no redemptions left (all {allowed} allowed were made)")]
    UsedUp {
        /// The grant id.
        grant: String,
        /// The grant's name.
        name: String,
        /// How many redemptions it allows.
        allowed: u32,
    },
    /// Other handles on the store (other processes) kept changing the grant
    /// record; nothing was spent.
    #[error("grant {grant:?} is being redeemed concurrently through another handle on the site's store (another process): gave up after {attempts} attempts; try again")]
    Conflict {
        /// The grant id.
        grant: String,
        /// How many compare-and-swap attempts were made.
        attempts: u32,
    },
    /// The grant record could not be read or written; nothing was spent.
    #[error("grant {grant:?} could not be redeemed: {source}")]
    Store {
        /// The grant id.
        grant: String,
        /// The store's error.
        source: StoreError,
    },
    /// The certificate could not be made (the redemption was spent: the
    /// safe direction).
    #[error("grant {grant:?} could not be redeemed: making the certificate failed: {reason}")]
    Issue {
        /// The grant id.
        grant: String,
        /// What failed; it is the response's body, as in Skupper.
        reason: String,
    },
}

impl GrantError {
    /// The HTTP status Skupper's grant server answers with for this case.
    ///
    /// A store failure is answered as Skupper answers a grant status that
    /// cannot be updated: 503. An unusable `name` or `subject` (which
    /// Skupper does not check) is 400, as a request Skupper cannot read.
    pub fn http_status(&self) -> u16 {
        match self {
            GrantError::NotPost { .. } => 405,
            GrantError::BodyNotValid { .. }
            | GrantError::InvalidName { .. }
            | GrantError::InvalidSubject { .. } => 400,
            GrantError::NoSuchGrant { .. }
            | GrantError::Expired { .. }
            | GrantError::UsedUp { .. } => 404,
            GrantError::WrongCode { .. } => 403,
            GrantError::Conflict { .. } | GrantError::Store { .. } => 503,
            GrantError::Issue { .. } => 500,
        }
    }

    /// The response body (plain text), exactly Skupper's, with its trailing
    /// newline: nothing about the grant beyond what Skupper says. The
    /// bodies for an unusable `name` or `subject` say only what is wrong
    /// with what the caller sent.
    pub fn http_body(&self) -> String {
        match self {
            GrantError::NotPost { .. } => "Only POST is supported\n".to_owned(),
            GrantError::BodyNotValid { .. } => "Request body not valid\n".to_owned(),
            GrantError::InvalidName { source, .. } => {
                format!("Request not valid: the name header is not a usable name: {source}\n")
            }
            GrantError::InvalidSubject { source, .. } => {
                format!("Request not valid: the subject header is not a usable site id: {source}\n")
            }
            GrantError::NoSuchGrant { .. } | GrantError::Expired { .. } => {
                "No such claim\n".to_owned()
            }
            GrantError::UsedUp { .. } => "No such access granted\n".to_owned(),
            GrantError::WrongCode { .. } => "Redemption of access token refused\n".to_owned(),
            GrantError::Conflict { .. } | GrantError::Store { .. } => "Internal error\n".to_owned(),
            GrantError::Issue { reason, .. } => format!("{reason}\n"),
        }
    }

    /// Whether trying again later can succeed: only for 5xx (a conflict, a
    /// store failure, a certificate not made); a refusal (4xx) is final.
    pub fn is_retryable(&self) -> bool {
        crate::transport::status_is_retryable(self.http_status())
    }

    /// For a refusal by [`GrantRecord::check`], the few words a failed
    /// attempt is recorded with: `wrong code`, `expired`, `no redemptions
    /// left`.
    pub fn refusal_reason(&self) -> Option<&'static str> {
        match self {
            GrantError::WrongCode { .. } => Some("wrong code"),
            GrantError::Expired { .. } => Some("expired"),
            GrantError::UsedUp { .. } => Some("no redemptions left"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;
    use time::macros::datetime;

    #[test]
    fn names_are_short_object_names() {
        assert_eq!(check_name("grant1"), Ok(()));
        assert_eq!(check_name("a.b-c"), Ok(()));
        assert_eq!(check_name(&"a".repeat(MAX_NAME_LEN)), Ok(()));
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert_eq!(
            check_name(&"a".repeat(MAX_NAME_LEN + 1)),
            Err(NameError::TooLong { len: 64 })
        );
        assert_eq!(
            check_name("Grant"),
            Err(NameError::BadCharacter {
                character: 'G',
                position: 1
            })
        );
        assert_eq!(check_name("-a"), Err(NameError::BadEdge));
        assert_eq!(check_name("a."), Err(NameError::BadEdge));
    }

    #[test]
    fn unreadable_key_matches_nothing() {
        let (mut record, code) = GrantRecord::new(
            &GrantOptions::new("g"),
            datetime!(2026-12-01 10:00 UTC),
            &mut SeededRandom::new(1),
        )
        .unwrap();
        assert!(record.code_matches(code.expose().as_bytes()));
        record.code_key = "not base64!".into();
        assert!(!record.code_matches(code.expose().as_bytes()));
    }
}
