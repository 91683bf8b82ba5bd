//! Skupper 2.x on the issuing site: access grants (issued, listed,
//! deleted, redeemed) and link files (`link generate`).
//!
//! # The AccessToken's CA
//!
//! An AccessToken's `spec.ca` is the CA the grant server's certificate
//! chains to, the only one its redeemer trusts. This site's grant server is
//! its claims endpoint, whose certificate the site CA issues
//! ([`Site::server_credentials`]), so `spec.ca` is the site CA, as in a 1.x
//! claim token. (A Skupper site has a separate grant-server CA; the
//! redeemer cannot tell.)
//!
//! # What a redemption returns
//!
//! A Link file ([`LinkFile`]) whose Secret holds a certificate from the
//! site CA, CN = the redeeming site's id (the `subject` header), SANs = the
//! site's endpoint hosts, and one Link per endpoint group of this site. A
//! site here has one group ([`ENDPOINT_GROUP`]: its inter-router and edge
//! endpoints), so one Link, named as the Secret (the `name` header), as
//! Skupper names a single group's Link.

use time::{Duration, OffsetDateTime};

use super::{Loaded, Site, TokenError};
use crate::random::Random;
use crate::records::{IssuedCert, IssuedRecord, IssuedVia};
use crate::store::{typed, Cas, Key, Listing, Record, RecordKind, Store, StoreError};
use crate::token::SecretPem;
use crate::v2::grant::{self, GrantOptions, RedemptionNames};
use crate::v2::grant_redeem::{GrantRedeemer, GrantRedemption};
use crate::v2::{AccessToken, GrantError, GrantRecord, Link, LinkEndpoint, LinkFile, TlsSecret};

/// The endpoint group of this site's Links: its one router, named as
/// Skupper names a site's router.
pub const ENDPOINT_GROUP: &str = "skupper-router";

/// The default cost of the Links [`Site::generate_link_file`] makes, as
/// `skupper link generate`'s `--cost`.
pub const DEFAULT_LINK_FILE_COST: u32 = 1;

impl<S: Store> Site<S> {
    /// Issues an access grant (`token issue`): stores its record (the code
    /// only as a keyed hash) under the site's current CA generation (the
    /// one in `options` is ignored) and returns it with the AccessToken to
    /// write: `spec.url` = `https://<claims host>:<claims port>/<grant
    /// id>`, `spec.code` from `rng`, `spec.linkCost` = `options.link_cost`,
    /// and `spec.ca` = the site CA.
    ///
    /// `spec.ca` is the CA the grant server's certificate chains to, the
    /// only one its redeemer trusts. This site's grant server is its claims
    /// endpoint, whose certificate the site CA issues
    /// ([`Site::server_credentials`]), so it is the site CA, as in a 1.x
    /// claim token. (A Skupper site has a separate grant-server CA; a
    /// redeemer cannot tell the difference.)
    ///
    /// Refuses a name an outstanding grant has ([`TokenError::GrantExists`])
    /// and options [`GrantRecord::new`] refuses
    /// ([`TokenError::GrantOptions`]); an edge site issues none
    /// ([`TokenError::EdgeCannotAcceptConnections`]).
    pub fn issue_grant(
        &self,
        options: &GrantOptions,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<(GrantRecord, AccessToken), TokenError> {
        let loaded = self.loaded()?;
        let issuer = self.issuer(&loaded)?;
        if self
            .grants_listing()?
            .records
            .iter()
            .any(|g| g.name == options.name)
        {
            return Err(TokenError::GrantExists {
                name: options.name.clone(),
            });
        }
        let options = GrantOptions {
            ca_generation: loaded.record.ca_generation,
            ..options.clone()
        };
        let (record, code) = GrantRecord::new(&options, now, rng)?;
        let key = Key::new(RecordKind::Grant, record.id.clone());
        let new = Some(Record::Grant(Box::new(record.clone())));
        if let Cas::Conflict(_) = self.store.compare_and_swap(&key, None, new)? {
            // A random UUID does not collide; a store that says so was
            // written by someone else under the same id.
            return Err(TokenError::Conflict {
                what: format!("grant record {:?}", record.id),
                attempts: 1,
            });
        }
        let token = AccessToken {
            name: record.name.clone(),
            ca_pem: issuer.ca_pem().to_owned(),
            code,
            link_cost: options.link_cost,
            url: format!("https://{}/{}", loaded.record.claims, record.id),
        };
        Ok((record, token))
    }

    /// The outstanding grants (also used-up and expired ones, until deleted
    /// or voided by a revoke-access), by id.
    pub fn grants(&self) -> Result<Vec<GrantRecord>, StoreError> {
        Ok(typed::list(&self.store, RecordKind::Grant, typed::grant)?
            .into_iter()
            .map(|v| v.record)
            .collect())
    }

    /// The grants whose records can be read, and those that cannot.
    pub fn grants_listing(&self) -> Result<Listing<GrantRecord>, StoreError> {
        typed::list_readable(&self.store, RecordKind::Grant, typed::grant)
    }

    /// Whether a grant record has the id `grant` (readable or not, of any
    /// CA generation): what an endpoint that answers both 1.x claims and
    /// 2.x grants routes a request by when the request does not say which
    /// it is. Reads only the record names.
    pub fn has_grant(&self, grant: &str) -> Result<bool, StoreError> {
        Ok(self
            .store
            .names(RecordKind::Grant)?
            .iter()
            .any(|id| id == grant))
    }

    /// Deletes the grant whose id is `grant`, or else every grant named
    /// `grant`, so that its AccessToken stops working. A record named by
    /// its id is deleted without being read (a corrupt one too). Returns
    /// how many were deleted.
    pub fn delete_grant(&self, grant: &str) -> Result<usize, StoreError> {
        if crate::object_name::check(grant).is_ok()
            && self.store.delete(&Key::new(RecordKind::Grant, grant))?
        {
            return Ok(1);
        }
        let mut deleted = 0;
        for g in self.grants_listing()?.records {
            if g.name == grant && self.store.delete(&Key::new(RecordKind::Grant, g.id))? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Redeems a grant, as this site's grant server does: the rules, in
    /// order, and what each refusal answers are in
    /// [`crate::v2::grant_redeem`]. The returned Link file is the 200
    /// body ([`LinkFile::encode_grant_response`]); it is returned only
    /// after one store write spent the redemption and recorded its
    /// certificate, so a crash can waste a redemption but never grant an
    /// extra one.
    pub fn redeem_grant(
        &self,
        request: &GrantRedemption,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<LinkFile, GrantError> {
        let site_err = |e: TokenError| match e {
            TokenError::Store(source) => GrantError::Store {
                grant: request.grant.clone(),
                source,
            },
            other => GrantError::Issue {
                grant: request.grant.clone(),
                reason: other.to_string(),
            },
        };
        let loaded = self.loaded().map_err(|e| site_err(e.into()))?;
        let redeemer = GrantRedeemer {
            store: &self.store,
            queue: &self.claim_queue,
            ca_generation: loaded.record.ca_generation,
        };
        redeemer.redeem(request, now, rng, |names: &RedemptionNames, rng| {
            self.make_link_file(
                &loaded,
                &LinkFileNames {
                    links: vec![names.name.clone()],
                    secret: names.name.clone(),
                    common_name: names.subject.clone(),
                },
                0,
                now,
                rng,
            )
            .map_err(site_err)
        })
    }

    /// What `link generate` prints: a fresh certificate from the site CA
    /// (CN = the Secret's name, as a cert token's is its name), recorded
    /// as issued ([`IssuedVia::LinkFile`]) so that revoking the peer by
    /// that name finds it, in a Secret named `tls_credentials` (default
    /// `name`), and one Link per endpoint group, named
    /// `<name>-<group>` as Skupper names them, of cost `cost`.
    pub fn generate_link_file(
        &self,
        name: &str,
        cost: u32,
        tls_credentials: Option<&str>,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<LinkFile, TokenError> {
        let secret = tls_credentials.unwrap_or(name);
        for (what, value) in [("link name", name), ("TLS credentials name", secret)] {
            grant::check_name(value).map_err(|e| TokenError::Invalid {
                what,
                value: value.to_owned(),
                reason: e.to_string(),
            })?;
        }
        let loaded = self.loaded()?;
        let names = LinkFileNames {
            links: vec![format!("{name}-{ENDPOINT_GROUP}")],
            secret: secret.to_owned(),
            common_name: secret.to_owned(),
        };
        let (file, cert) = self.make_link_file(&loaded, &names, cost, now, rng)?;
        let issued = IssuedRecord {
            serial: cert.serial.clone(),
            common_name: cert.common_name,
            via: IssuedVia::LinkFile {
                name: secret.to_owned(),
            },
            ca_generation: loaded.record.ca_generation,
            issued_at: cert.issued_at,
            not_after: cert.not_after,
        };
        let key = Key::new(RecordKind::Issued, cert.serial);
        // A 128-bit random serial does not collide.
        let _ = self
            .store
            .compare_and_swap(&key, None, Some(Record::Issued(issued)))?;
        Ok(file)
    }

    /// Makes a certificate from the site CA for `names.common_name` (SANs:
    /// the site's hosts) and the Link file carrying it; stores nothing.
    fn make_link_file(
        &self,
        loaded: &Loaded,
        names: &LinkFileNames,
        cost: u32,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<(LinkFile, IssuedCert), TokenError> {
        let issuer = self.issuer(loaded)?;
        let r = &loaded.record;
        let validity: Duration = r.cert_validity();
        let cert =
            issuer.issue_client_for_hosts(&names.common_name, &r.hosts, rng, now, validity)?;
        let info = crate::pki::certificate_info(&cert.cert_der)?;
        let issued = IssuedCert {
            serial: info.serial_hex,
            common_name: names.common_name.clone(),
            issued_at: now,
            not_after: info.not_after,
        };
        let endpoint = |name: &str, e: &crate::token::Endpoint| LinkEndpoint {
            name: name.to_owned(),
            host: e.host.clone(),
            port: e.port,
            group: ENDPOINT_GROUP.to_owned(),
        };
        let links = names
            .links
            .iter()
            .map(|link| Link {
                name: link.clone(),
                endpoints: vec![
                    endpoint("inter-router", &r.inter_router),
                    endpoint("edge", &r.edge),
                ],
                tls_credentials: names.secret.clone(),
                cost,
                settings: Default::default(),
            })
            .collect();
        let file = LinkFile {
            links,
            secret: TlsSecret {
                name: names.secret.clone(),
                ca_pem: issuer.ca_pem().to_owned(),
                cert_pem: cert.cert_pem.clone(),
                key_pem: SecretPem::new(cert.key.to_pem()),
            },
        };
        Ok((file, issued))
    }
}

/// The names in a Link file made here.
struct LinkFileNames {
    /// One Link name per endpoint group.
    links: Vec<String>,
    /// The Secret's name (the Links' `tlsCredentials`).
    secret: String,
    /// The certificate's common name.
    common_name: String,
}
