//! The record of one live link from another site ([`crate::incoming`]
//! describes when it is written and when it stops counting).

use time::{Duration, OffsetDateTime};

/// One live link from another site to this one, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct IncomingRecord {
    /// The remote site's id (from its hello).
    pub peer_site_id: String,
    /// The remote site's name (from its hello).
    pub peer_site_name: String,
    /// The remote site's name for the link.
    pub link: String,
    /// The common name of the certificate the peer authenticated with.
    pub certificate_cn: String,
    /// That certificate's serial number, uppercase hex.
    pub certificate_serial: String,
    /// When that certificate expires.
    #[serde(with = "time::serde::rfc3339")]
    pub certificate_not_after: OffsetDateTime,
    /// The CA generation the certificate authenticated under.
    pub ca_generation: u32,
    /// When the link connected (with this certificate).
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// Which running site holds the connection.
    pub holder: String,
    /// Until when the record counts as live unless renewed.
    #[serde(with = "time::serde::rfc3339")]
    pub lease_until: OffsetDateTime,
}

impl IncomingRecord {
    /// The store name of the record of link `link` from site
    /// `peer_site_id`: `in-` and 32 hex digits of a SHA-256 of the two.
    /// Both come from the peer and may hold any character, so they are
    /// hashed into a name every store can keep.
    pub fn key_name(peer_site_id: &str, link: &str) -> String {
        let mut input = Vec::with_capacity(peer_site_id.len() + link.len() + 1);
        input.extend_from_slice(peer_site_id.as_bytes());
        input.push(0);
        input.extend_from_slice(link.as_bytes());
        let digest = ring::digest::digest(&ring::digest::SHA256, &input);
        format!("in-{}", super::hex(&digest.as_ref()[..16]))
    }

    /// This record's store name ([`IncomingRecord::key_name`]).
    pub fn name(&self) -> String {
        IncomingRecord::key_name(&self.peer_site_id, &self.link)
    }

    /// Whether the record counts as live at `now`: its lease has not run
    /// out.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        now < self.lease_until
    }

    /// Whether the holder should renew the lease at `now`: a third of
    /// `lease` has passed since it was last written.
    pub fn renewal_due(&self, now: OffsetDateTime, lease: Duration) -> bool {
        self.lease_until - now <= lease - lease / 3
    }
}
