//! The links other sites make to this one: authenticating the peer,
//! recording the link as live ([`crate::incoming`]), renewing, expiring
//! and dropping it.

use std::fmt;

use time::OffsetDateTime;

use super::{lock, Held, IncomingError, LoadError, Site};
use crate::claim::{self, MAX_CAS_ATTEMPTS};
use crate::incoming::IncomingRecord;
use crate::pki::{AuthError, PeerCertificate};
use crate::records::{IssuedRecord, IssuedVia};
use crate::store::{typed, Cas, Key, Record, RecordKind, Store, StoreError, Versioned};

/// What a dialing site says about itself after the TLS handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerHello {
    /// Its site id.
    pub site_id: String,
    /// Its site name.
    pub site_name: String,
    /// The name of its link to this site.
    pub link: String,
}

/// A live link from another site to this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingLink {
    /// The remote site's id.
    pub peer_site_id: String,
    /// The remote site's name.
    pub peer_site_name: String,
    /// The remote link's name.
    pub link: String,
    /// The certificate the peer authenticated with.
    pub certificate: PeerCertificate,
    /// When it connected.
    pub since: OffsetDateTime,
    /// When it was last seen alive.
    pub last_seen: OffsetDateTime,
}

impl<S: Store> Site<S> {
    /// Decides whether a connecting site may link: its certificate chain
    /// (DER, leaf first) must chain to this site's current CA, be valid at
    /// `now`, allow client authentication and not be revoked.
    pub fn authenticate_peer(
        &self,
        chain: &[&[u8]],
        now: OffsetDateTime,
    ) -> Result<PeerCertificate, AuthError> {
        let loaded = self.loaded().map_err(|e| AuthError::Malformed {
            reason: format!("this site cannot check certificates: {e}"),
        })?;
        let verifier = loaded.verifier.as_ref().ok_or(AuthError::NotAccepting)?;
        let peer = verifier.verify(chain, now)?;
        if let Some(revoked) = loaded.revoked.get(&peer.serial_hex) {
            return Err(AuthError::Revoked {
                common_name: peer.common_name,
                reason: format!(
                    "this site revoked access for {:?} at {}",
                    revoked.common_name,
                    claim::rfc3339(&revoked.at)
                ),
            });
        }
        Ok(peer)
    }

    /// Authenticates a connecting site ([`Site::authenticate_peer`]) and
    /// records its link as live, or refreshes it: in this handle's cache,
    /// and in the store ([`crate::incoming`]) when the link is new, when its
    /// certificate or its peer's name changed, or when its lease is due for
    /// renewal. A link that cannot be recorded is refused.
    pub fn accept_incoming(
        &self,
        chain: &[&[u8]],
        hello: &PeerHello,
        now: OffsetDateTime,
    ) -> Result<IncomingLink, AuthError> {
        let certificate = self.authenticate_peer(chain, now)?;
        let unchecked = |e: &dyn fmt::Display| AuthError::Malformed {
            reason: format!("this site cannot check certificates: {e}"),
        };
        // A claim's (or grant's) certificate names the site that redeemed it (its CN is
        // that site's id): no other site may link with it, or take over that
        // site's incoming link. A certificate whose CN is the connecting
        // site's id passes whatever issued it, so only another CN is looked
        // up (a cert token's, or a claim certificate presented by the wrong
        // site).
        if certificate.common_name != hello.site_id {
            let issued = self
                .issued_by_serial(&certificate.serial_hex)
                .map_err(|e| unchecked(&e))?;
            if let Some(IssuedRecord {
                via: IssuedVia::Claim { name } | IssuedVia::Grant { name, .. },
                common_name,
                ..
            }) = issued
            {
                return Err(AuthError::WrongSite {
                    claim: name,
                    common_name,
                    claimed_site_id: hello.site_id.clone(),
                });
            }
        }
        let ca_generation = self
            .loaded()
            .map_err(|e| unchecked(&e))?
            .record
            .ca_generation;
        let mut incoming = lock(&self.incoming);
        let key = (hello.site_id.clone(), hello.link.clone());
        let (link, write) = match incoming.get(&key) {
            Some(held) => {
                let mut link = held.link.clone();
                let new_certificate = link.certificate != certificate;
                if new_certificate {
                    link.since = now;
                    link.certificate = certificate;
                }
                let renamed = link.peer_site_name != hello.site_name;
                link.peer_site_name.clone_from(&hello.site_name);
                link.last_seen = now;
                let due = held.record.renewal_due(now, self.lease)
                    || held.record.ca_generation != ca_generation;
                (link, new_certificate || renamed || due)
            }
            None => (
                IncomingLink {
                    peer_site_id: hello.site_id.clone(),
                    peer_site_name: hello.site_name.clone(),
                    link: hello.link.clone(),
                    certificate,
                    since: now,
                    last_seen: now,
                },
                true,
            ),
        };
        let record = if write {
            let record = self.incoming_record(&link, ca_generation, now);
            self.put_incoming(&record)
                .map_err(|e| AuthError::Malformed {
                    reason: format!("this site cannot record the link: {e}"),
                })?;
            record
        } else {
            match incoming.get(&key) {
                Some(held) => held.record.clone(),
                None => self.incoming_record(&link, ca_generation, now),
            }
        };
        incoming.insert(
            key,
            Held {
                link: link.clone(),
                record,
            },
        );
        Ok(link)
    }

    fn incoming_record(
        &self,
        link: &IncomingLink,
        ca_generation: u32,
        now: OffsetDateTime,
    ) -> IncomingRecord {
        IncomingRecord {
            peer_site_id: link.peer_site_id.clone(),
            peer_site_name: link.peer_site_name.clone(),
            link: link.link.clone(),
            certificate_cn: link.certificate.common_name.clone(),
            certificate_serial: link.certificate.serial_hex.clone(),
            certificate_not_after: link.certificate.not_after,
            ca_generation,
            since: link.since,
            holder: self.holder.clone(),
            lease_until: now + self.lease,
        }
    }

    /// Writes `record` over whatever the store holds under its name.
    fn put_incoming(&self, record: &IncomingRecord) -> Result<(), IncomingError> {
        let key = Key::new(RecordKind::Incoming, record.name());
        for _ in 0..MAX_CAS_ATTEMPTS {
            let current = self.store.load(&key)?.map(|v| v.version);
            let new = Some(Record::Incoming(record.clone()));
            if let Cas::Done(_) = self.store.compare_and_swap(&key, current, new)? {
                return Ok(());
            }
        }
        Err(IncomingError::Conflict {
            what: key.to_string(),
            attempts: MAX_CAS_ATTEMPTS,
        })
    }

    /// Deletes the record of link `link` from `peer_site_id` if this
    /// handle's holder holds it (a newer connection held elsewhere stays).
    fn forget_incoming(&self, peer_site_id: &str, link: &str) -> Result<(), IncomingError> {
        let key = Key::new(
            RecordKind::Incoming,
            IncomingRecord::key_name(peer_site_id, link),
        );
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(Versioned { version, record }) =
                typed::load(&self.store, &key, typed::incoming)?
            else {
                return Ok(());
            };
            if record.holder != self.holder {
                return Ok(());
            }
            if let Cas::Done(_) = self.store.compare_and_swap(&key, Some(version), None)? {
                return Ok(());
            }
        }
        Err(IncomingError::Conflict {
            what: key.to_string(),
            attempts: MAX_CAS_ATTEMPTS,
        })
    }

    /// The incoming links this handle holds (its cache; see
    /// [`Site::incoming_links`] for every handle's).
    pub fn incoming(&self) -> Vec<IncomingLink> {
        lock(&self.incoming)
            .values()
            .map(|h| h.link.clone())
            .collect()
    }

    /// Every live incoming link of the site, whoever holds it, as the store
    /// records them: those of the current CA whose lease has not run out at
    /// `now` ([`crate::incoming`]).
    pub fn incoming_links(&self, now: OffsetDateTime) -> Result<Vec<IncomingRecord>, LoadError> {
        let generation = self.loaded()?.record.ca_generation;
        Ok(self
            .incoming_records()?
            .into_iter()
            .filter(|r| r.is_live(now) && r.ca_generation == generation)
            .collect())
    }

    pub(super) fn incoming_records(&self) -> Result<Vec<IncomingRecord>, StoreError> {
        Ok(
            typed::list(&self.store, RecordKind::Incoming, typed::incoming)?
                .into_iter()
                .map(|v| v.record)
                .collect(),
        )
    }

    /// Drops the incoming link `link` from site `peer_site_id` (the
    /// connection closed): from this handle's cache, and its record from the
    /// store unless another holder has taken it over.
    pub fn drop_incoming(
        &self,
        peer_site_id: &str,
        link: &str,
    ) -> Result<Option<IncomingLink>, IncomingError> {
        let mut incoming = lock(&self.incoming);
        let held = incoming.remove(&(peer_site_id.to_owned(), link.to_owned()));
        self.forget_incoming(peer_site_id, link)?;
        Ok(held.map(|h| h.link))
    }

    /// Drops the incoming links this handle holds that were not seen since
    /// `before` (heartbeat timeout), and their records.
    pub fn expire_incoming(
        &self,
        before: OffsetDateTime,
    ) -> Result<Vec<IncomingLink>, IncomingError> {
        let mut incoming = lock(&self.incoming);
        let stale: Vec<_> = incoming
            .iter()
            .filter(|(_, h)| h.link.last_seen < before)
            .map(|(k, _)| k.clone())
            .collect();
        let mut dropped = Vec::new();
        for key in stale {
            if let Some(held) = incoming.remove(&key) {
                self.forget_incoming(&key.0, &key.1)?;
                dropped.push(held.link);
            }
        }
        Ok(dropped)
    }

    /// Renews the lease of every incoming link this handle holds whose
    /// renewal is due at `now` (a third of the lease has passed): what the
    /// holder of live connections calls periodically. A record that is no
    /// longer there (revoked) or that another holder took over is not
    /// written again. Returns how many were renewed.
    pub fn renew_incoming(&self, now: OffsetDateTime) -> Result<usize, IncomingError> {
        let mut incoming = lock(&self.incoming);
        let mut renewed = 0;
        for held in incoming.values_mut() {
            if !held.record.renewal_due(now, self.lease) {
                continue;
            }
            let key = Key::new(RecordKind::Incoming, held.record.name());
            let Some(Versioned { version, record }) =
                typed::load(&self.store, &key, typed::incoming)?
            else {
                continue;
            };
            if record.holder != self.holder
                || record.certificate_serial != held.record.certificate_serial
            {
                continue;
            }
            let next = IncomingRecord {
                lease_until: now + self.lease,
                ..record
            };
            let new = Some(Record::Incoming(next.clone()));
            if let Cas::Done(_) = self.store.compare_and_swap(&key, Some(version), new)? {
                held.record = next;
                renewed += 1;
            }
        }
        Ok(renewed)
    }

    /// Deletes the incoming-link records that are not live: those this
    /// handle's holder holds no connection for (left by an earlier run that
    /// ended without closing them, for example a crash), those whose lease
    /// ran out at `now`, and those of an older CA. What a holder calls when
    /// it starts, and now and then. Returns how many were deleted.
    pub fn reconcile_incoming(&self, now: OffsetDateTime) -> Result<usize, IncomingError> {
        let generation = self.loaded()?.record.ca_generation;
        let incoming = lock(&self.incoming);
        let mut deleted = 0;
        for (name, Versioned { version, record }) in self.store.list(RecordKind::Incoming)? {
            let Ok(record) = typed::incoming(record) else {
                continue;
            };
            let held_here = incoming
                .get(&(record.peer_site_id.clone(), record.link.clone()))
                .is_some_and(|h| h.record.certificate_serial == record.certificate_serial);
            let orphan = record.holder == self.holder && !held_here;
            if orphan || !record.is_live(now) || record.ca_generation != generation {
                let key = Key::new(RecordKind::Incoming, name);
                if let Cas::Done(_) = self.store.compare_and_swap(&key, Some(version), None)? {
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }

    /// Deletes the incoming-link records `pick` selects (every version
    /// seen), and returns them.
    pub(super) fn delete_incoming_where(
        &self,
        pick: impl Fn(&IncomingRecord) -> bool,
    ) -> Result<Vec<IncomingRecord>, IncomingError> {
        let mut deleted = Vec::new();
        for _ in 0..MAX_CAS_ATTEMPTS {
            let mut conflicts = 0;
            for (name, Versioned { version, record }) in self.store.list(RecordKind::Incoming)? {
                let Ok(record) = typed::incoming(record) else {
                    continue;
                };
                if !pick(&record) {
                    continue;
                }
                let key = Key::new(RecordKind::Incoming, name);
                match self.store.compare_and_swap(&key, Some(version), None)? {
                    Cas::Done(_) => deleted.push(record),
                    Cas::Conflict(_) => conflicts += 1,
                }
            }
            if conflicts == 0 {
                return Ok(deleted);
            }
        }
        Err(IncomingError::Conflict {
            what: "the incoming records".into(),
            attempts: MAX_CAS_ATTEMPTS,
        })
    }
}
