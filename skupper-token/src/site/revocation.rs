//! Revocation: of access to the site as a whole (a new CA; every claim,
//! grant and incoming link goes) and of one peer (its certificates stop
//! authenticating; every other site stays linked).

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use super::{lock, RevokeError, Site};
use crate::claim;
use crate::incoming::IncomingRecord;
use crate::pki::CaIssuer;
use crate::random::Random;
use crate::records::{GrantState, RevokedCert, StoredCert};
use crate::store::{Key, RecordKind, Store};

/// What [`Site::revoke_access`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRevoked {
    /// The new CA generation.
    pub ca_generation: u32,
    /// Claim records deleted (every claim, also used-up and expired ones).
    pub claims_deleted: usize,
    /// Of those, the claims that could still have been redeemed (neither
    /// used up nor expired): the claim tokens the revocation stopped.
    pub claims_voided: usize,
    /// Grant records deleted (every grant, also used-up and expired ones).
    pub grants_deleted: usize,
    /// Of those, the grants that could still have been redeemed: the
    /// AccessTokens the revocation stopped.
    pub grants_voided: usize,
    /// Issued-certificate records forgotten (all of the old CA).
    pub certificates_forgotten: usize,
    /// The incoming links whose records were deleted (all of them): the
    /// running site that holds their connections closes them.
    pub incoming_dropped: Vec<IncomingRecord>,
}

/// What [`Site::revoke_peer`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRevoked {
    /// The peer asked for.
    pub peer: String,
    /// The certificates that stop authenticating.
    pub revoked: Vec<RevokedCert>,
    /// The incoming links whose records were deleted (those that
    /// authenticated with a revoked certificate).
    pub incoming_dropped: Vec<IncomingRecord>,
}

impl<S: Store> Site<S> {
    /// Revokes access to this site: a new CA (generation + 1) and server
    /// certificate, every claim and grant record deleted (their tokens stop
    /// working: 404 `No such claim`), every incoming link
    /// dropped. Certificates from the old CA no longer authenticate, so the
    /// dropped links cannot come back. Outgoing links are untouched.
    pub fn revoke_access(
        &self,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<AccessRevoked, RevokeError> {
        let loaded = self.loaded()?;
        self.issuer(&loaded)?;
        let validity = loaded.record.cert_validity();
        let ca = CaIssuer::new_site_ca_with(self.keys.clone(), rng, now, validity)?;
        let server = ca.issue_server(&loaded.record.hosts, rng, now, validity)?;
        let record = self.update_site(|r| {
            r.ca = Some(StoredCert::from_certified(ca.certified_key()));
            r.server = Some(StoredCert::from_certified(&server));
            r.ca_generation = r.ca_generation.saturating_add(1);
            r.revoked.clear();
            r.revoked_at = Some(now);
            Ok(())
        })?;
        // The generation check already voids every old claim; deleting the
        // records makes that visible and frees the names. Only claims that
        // could still have been redeemed are voided by it.
        let claims_voided = self
            .claims_listing()?
            .records
            .iter()
            .filter(|c| {
                c.ca_generation < record.ca_generation && c.state(now) == claim::ClaimState::Active
            })
            .count();
        let grants_voided = self
            .grants_listing()?
            .records
            .iter()
            .filter(|g| {
                g.ca_generation < record.ca_generation && g.state(now) == GrantState::Active
            })
            .count();
        // Certificates kept in claim and grant records and batches are forgotten with
        // them; a record that cannot be read counts as one.
        let certificates_forgotten = self.issued_count()?;
        let claims_deleted = self.delete_all(RecordKind::Claim)?;
        let grants_deleted = self.delete_all(RecordKind::Grant)?;
        self.delete_all(RecordKind::Issued)?;
        self.delete_all(RecordKind::ClaimIssued)?;
        lock(&self.incoming).clear();
        let incoming_dropped = self.delete_incoming_where(|_| true)?;
        Ok(AccessRevoked {
            ca_generation: record.ca_generation,
            claims_deleted,
            claims_voided,
            grants_deleted,
            grants_voided,
            certificates_forgotten,
            incoming_dropped,
        })
    }

    /// Deletes every record of `kind`, without reading them (a corrupt
    /// record does not stop a revocation). Returns how many were deleted.
    fn delete_all(&self, kind: RecordKind) -> Result<usize, RevokeError> {
        let mut deleted = 0;
        for name in self.store.names(kind)? {
            if self.store.delete(&Key::new(kind, name))? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Revokes one remote site (or one cert token): every certificate of
    /// the current CA whose common name is `peer` (a site id or cert token
    /// name), or that an incoming link from site id or name `peer`
    /// authenticated with (as the store records them, whichever handle or
    /// process holds the link), stops authenticating; the records of its
    /// incoming links are deleted, and the handle holding them closes them.
    /// Every other site stays linked.
    pub fn revoke_peer(&self, peer: &str, now: OffsetDateTime) -> Result<PeerRevoked, RevokeError> {
        let loaded = self.loaded()?;
        self.issuer(&loaded)?;
        let generation = loaded.record.ca_generation;
        let mut names: BTreeSet<String> = BTreeSet::from([peer.to_owned()]);
        let mut serials: BTreeMap<String, String> = BTreeMap::new();
        let by_name = |id: &str, name: &str| id == peer || name == peer;
        for r in self.incoming_records()? {
            if r.ca_generation == generation && by_name(&r.peer_site_id, &r.peer_site_name) {
                names.insert(r.certificate_cn.clone());
                serials.insert(r.certificate_serial, r.certificate_cn);
            }
        }
        for h in lock(&self.incoming).values() {
            let l = &h.link;
            if by_name(&l.peer_site_id, &l.peer_site_name) {
                names.insert(l.certificate.common_name.clone());
                serials.insert(
                    l.certificate.serial_hex.clone(),
                    l.certificate.common_name.clone(),
                );
            }
        }
        for issued in self.issued()? {
            if issued.ca_generation == loaded.record.ca_generation
                && names.contains(&issued.common_name)
            {
                serials.insert(issued.serial, issued.common_name);
            }
        }
        if serials.is_empty() {
            return Err(RevokeError::UnknownPeer { peer: peer.into() });
        }
        let new: Vec<RevokedCert> = serials
            .iter()
            .map(|(serial, cn)| RevokedCert {
                serial: serial.clone(),
                common_name: cn.clone(),
                at: now,
            })
            .collect();
        self.update_site(|r| {
            for n in &new {
                if !r.revoked.iter().any(|x| x.serial == n.serial) {
                    r.revoked.push(n.clone());
                }
            }
            Ok(())
        })?;
        lock(&self.incoming).retain(|_, h| !serials.contains_key(&h.link.certificate.serial_hex));
        let incoming_dropped =
            self.delete_incoming_where(|r| serials.contains_key(&r.certificate_serial))?;
        Ok(PeerRevoked {
            peer: peer.to_owned(),
            revoked: new,
            incoming_dropped,
        })
    }
}
