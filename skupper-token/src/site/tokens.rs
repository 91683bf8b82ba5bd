//! The tokens a site issues: claim tokens (a claim record, whose password
//! only the token holds) and cert tokens (a certificate issued now), and
//! what the site lists of them.

use std::collections::{BTreeMap, BTreeSet};

use time::{Duration, OffsetDateTime};

use super::{validate_name, Loaded, Site, TokenError, DEFAULT_CERT_TOKEN_NAME};
use crate::claim::{self, ClaimRecord};
use crate::duration::GoDuration;
use crate::random::{self, Random};
use crate::records::{IssuedCert, IssuedRecord, IssuedVia};
use crate::store::{typed, Cas, Key, Listing, Record, RecordKind, Store, StoreError};
use crate::token::{CertToken, ClaimToken, Password, SecretPem, Token};

/// The two kinds of token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A claim token (the default): exchanged for a certificate when used.
    Claim,
    /// A cert token: carries a certificate, reusable until revoked.
    Cert,
}

/// How to make a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOptions {
    /// Claim or cert.
    pub kind: TokenKind,
    /// The token name: a claim defaults to a random UUID, a cert token to
    /// `skupper`.
    pub name: Option<String>,
    /// Claim tokens: how long the claim can be redeemed (default 15m, zero =
    /// never expires, otherwise at least [`MIN_CLAIM_EXPIRY`]).
    pub expiry: GoDuration,
    /// Claim tokens: how many times (default 1, 0 = unlimited).
    pub uses: u32,
    /// Cert tokens: the certificate's validity (default: the site's).
    pub validity: Option<Duration>,
}

/// The shortest expiry a claim token can have (other than zero, which means
/// it never expires): a claim valid for less than a second is expired by
/// the time anyone can redeem it.
pub const MIN_CLAIM_EXPIRY: GoDuration = GoDuration::from_secs(1);

impl TokenOptions {
    /// Checks what can be checked without a site: the token name, and the
    /// expiry (zero, or at least [`MIN_CLAIM_EXPIRY`]). Creating a token
    /// runs the same checks; call this to refuse bad options before
    /// anything else is done.
    pub fn validate(&self) -> Result<(), TokenError> {
        if let Some(name) = &self.name {
            validate_name("token name", name)?;
        }
        if !self.expiry.is_zero() && self.expiry < MIN_CLAIM_EXPIRY {
            return Err(TokenError::Invalid {
                what: "claim expiry",
                value: self.expiry.to_string(),
                reason: format!(
                    "a claim token must be valid for at least {MIN_CLAIM_EXPIRY}; give {MIN_CLAIM_EXPIRY} or more, or 0 for a token that never expires"
                ),
            });
        }
        Ok(())
    }

    /// A claim token with Skupper's defaults (15 minutes, one use).
    pub fn claim() -> TokenOptions {
        TokenOptions {
            kind: TokenKind::Claim,
            name: None,
            expiry: GoDuration::from_secs(15 * 60),
            uses: claim::DEFAULT_USES,
            validity: None,
        }
    }

    /// A cert token named `skupper`.
    pub fn cert() -> TokenOptions {
        TokenOptions {
            kind: TokenKind::Cert,
            ..TokenOptions::claim()
        }
    }

    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the expiry (zero = never).
    pub fn expiry(mut self, expiry: GoDuration) -> Self {
        self.expiry = expiry;
        self
    }

    /// Sets the number of uses (0 = unlimited).
    pub fn uses(mut self, uses: u32) -> Self {
        self.uses = uses;
        self
    }

    /// Sets a cert token's validity.
    pub fn validity(mut self, validity: Duration) -> Self {
        self.validity = Some(validity);
        self
    }
}

impl Default for TokenOptions {
    fn default() -> Self {
        TokenOptions::claim()
    }
}

impl<S: Store> Site<S> {
    /// Creates a token of either kind.
    pub fn create_token(
        &self,
        options: &TokenOptions,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<Token, TokenError> {
        Ok(match options.kind {
            TokenKind::Claim => Token::Claim(self.create_claim_token(options, now, rng)?),
            TokenKind::Cert => Token::Cert(self.create_cert_token(options, now, rng)?),
        })
    }

    /// Creates a claim token and records its claim. The password is drawn
    /// from `rng`; only its keyed hash is stored.
    pub fn create_claim_token(
        &self,
        options: &TokenOptions,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<ClaimToken, TokenError> {
        options.validate()?;
        let loaded = self.loaded()?;
        let issuer = self.issuer(&loaded)?;
        let name = match &options.name {
            Some(name) => name.clone(),
            None => random::uuid_v4(rng).to_string(),
        };
        let expires_at = if options.expiry.is_zero() {
            None
        } else {
            let at = now
                .truncate_to_second()
                .checked_add(options.expiry.as_duration())
                .filter(|t| t.year() <= 9999)
                .ok_or_else(|| TokenError::Invalid {
                    what: "claim expiry",
                    value: options.expiry.to_string(),
                    reason: "the expiry time would be after the year 9999; use 0 for never".into(),
                })?;
            Some(at)
        };
        let password = random::password(rng);
        let record = ClaimRecord::new(
            name.clone(),
            &password,
            expires_at,
            options.uses,
            loaded.record.ca_generation,
            now,
            rng,
        );
        let key = Key::new(RecordKind::Claim, name.clone());
        if let Cas::Conflict(_) =
            self.store
                .compare_and_swap(&key, None, Some(Record::Claim(record)))?
        {
            return Err(TokenError::ClaimExists { name });
        }
        let r = &loaded.record;
        Ok(ClaimToken {
            url: format!("https://{}/{}", r.claims, name),
            name,
            ca_pem: issuer.ca_pem().to_owned(),
            password: Password::new(password),
            issuer_site_id: r.id.clone(),
            issuer_version: r.version.clone(),
            expires_at,
        })
    }

    /// Creates a cert token: a client certificate issued now by the site
    /// CA, common name = the token name (default `skupper`).
    pub fn create_cert_token(
        &self,
        options: &TokenOptions,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<CertToken, TokenError> {
        options.validate()?;
        let loaded = self.loaded()?;
        self.issuer(&loaded)?;
        let name = options
            .name
            .clone()
            .unwrap_or_else(|| DEFAULT_CERT_TOKEN_NAME.to_owned());
        let validity = options.validity.unwrap_or(loaded.record.cert_validity());
        let (token, cert) = self.make_cert_token(&loaded, &name, &name, validity, now, rng)?;
        let issued = IssuedRecord {
            serial: cert.serial.clone(),
            common_name: cert.common_name,
            via: IssuedVia::CertToken { name: name.clone() },
            ca_generation: loaded.record.ca_generation,
            issued_at: cert.issued_at,
            not_after: cert.not_after,
        };
        let key = Key::new(RecordKind::Issued, cert.serial);
        // A 128-bit random serial does not collide; if the store says it
        // exists, the record is already there and nothing is lost.
        let _ = self
            .store
            .compare_and_swap(&key, None, Some(Record::Issued(issued)))?;
        Ok(token)
    }

    /// Makes a client certificate for `common_name` and the cert token
    /// carrying it, named `token_name`; stores nothing.
    pub(super) fn make_cert_token(
        &self,
        loaded: &Loaded,
        token_name: &str,
        common_name: &str,
        validity: Duration,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<(CertToken, IssuedCert), TokenError> {
        let issuer = self.issuer(loaded)?;
        let cert = issuer.issue_client(common_name, rng, now, validity)?;
        let info = crate::pki::certificate_info(&cert.cert_der)?;
        let issued = IssuedCert {
            serial: info.serial_hex,
            common_name: common_name.to_owned(),
            issued_at: now,
            not_after: info.not_after,
        };
        let r = &loaded.record;
        let token = CertToken {
            name: token_name.to_owned(),
            ca_pem: issuer.ca_pem().to_owned(),
            cert_pem: cert.cert_pem.clone(),
            key_pem: SecretPem::new(cert.key.to_pem()),
            issuer_site_id: r.id.clone(),
            issuer_version: r.version.clone(),
            inter_router: r.inter_router.clone(),
            edge: r.edge.clone(),
        };
        Ok((token, issued))
    }

    /// The outstanding claims, by name.
    pub fn claims(&self) -> Result<Vec<ClaimRecord>, StoreError> {
        Ok(typed::list(&self.store, RecordKind::Claim, typed::claim)?
            .into_iter()
            .map(|v| v.record)
            .collect())
    }

    /// The claims whose records can be read, and those that cannot (a
    /// corrupt record), so that a report can show the rest.
    pub fn claims_listing(&self) -> Result<Listing<ClaimRecord>, StoreError> {
        typed::list_readable(&self.store, RecordKind::Claim, typed::claim)
    }

    /// Deletes one claim, so its token stops working (for example when the
    /// token file could not be written). The record is not read, so a
    /// corrupt one is deleted too. Returns whether there was such a claim.
    pub fn delete_claim(&self, name: &str) -> Result<bool, StoreError> {
        self.store.delete(&Key::new(RecordKind::Claim, name))
    }

    /// The certificates the current CA has issued (and this site recorded),
    /// by serial: cert tokens' and link files', redeemed claims' and
    /// grants' (kept in their claim and grant records, and in batches moved
    /// out of them). A claim or grant record that cannot be read is left
    /// out ([`Site::claims_listing`] names it).
    pub fn issued(&self) -> Result<Vec<IssuedRecord>, StoreError> {
        let mut by_serial = BTreeMap::new();
        let mut add = |r: IssuedRecord| {
            by_serial.entry(r.serial.clone()).or_insert(r);
        };
        for v in typed::list(&self.store, RecordKind::Issued, typed::issued)? {
            add(v.record);
        }
        for v in typed::list(&self.store, RecordKind::ClaimIssued, typed::claim_issued)? {
            v.record.records().for_each(&mut add);
        }
        for claim in self.claims_listing()?.records {
            claim.issued_records().for_each(&mut add);
        }
        for grant in self.grants_listing()?.records {
            grant.issued_records().for_each(&mut add);
        }
        Ok(by_serial.into_values().collect())
    }

    /// How many certificates [`Site::issued`] lists, plus one for each
    /// record of a certificate or batch that cannot be read.
    pub(super) fn issued_count(&self) -> Result<usize, StoreError> {
        let mut serials = BTreeSet::new();
        let mut unreadable = 0;
        let issued = typed::list_readable(&self.store, RecordKind::Issued, typed::issued)?;
        unreadable += issued.unreadable.len();
        serials.extend(issued.records.into_iter().map(|r| r.serial));
        let batches =
            typed::list_readable(&self.store, RecordKind::ClaimIssued, typed::claim_issued)?;
        unreadable += batches.unreadable.len();
        for batch in batches.records {
            serials.extend(batch.certs.into_iter().map(|c| c.serial));
        }
        for claim in self.claims_listing()?.records {
            serials.extend(claim.issued.into_iter().map(|c| c.serial));
        }
        for grant in self.grants_listing()?.records {
            serials.extend(grant.issued.into_iter().map(|c| c.serial));
        }
        Ok(serials.len() + unreadable)
    }

    /// The record of the certificate with serial `serial`, wherever it is
    /// kept, or `None`.
    pub(super) fn issued_by_serial(
        &self,
        serial: &str,
    ) -> Result<Option<IssuedRecord>, StoreError> {
        let key = Key::new(RecordKind::Issued, serial);
        if let Some(v) = typed::load(&self.store, &key, typed::issued)? {
            return Ok(Some(v.record));
        }
        Ok(self.issued()?.into_iter().find(|r| r.serial == serial))
    }
}
