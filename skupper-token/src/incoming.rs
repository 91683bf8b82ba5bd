//! What a site records about the links other sites made to it.
//!
//! Every live incoming link has one [`IncomingRecord`] in the site's
//! [`crate::store::Store`], so every handle on the site (another thread,
//! another process such as a CLI command next to a running `serve`, later
//! another replica) sees the same links: who the peer is (site id and
//! name), its name for the link, since when it is up, and the certificate
//! and CA generation it authenticated with. The handle that holds the
//! connection keeps a cache of its own links; the store is the truth.
//!
//! # When records are written
//!
//! Writes are cheap because they are rare: a record is written when a link
//! connects, when something about it changes (a new certificate, a new
//! peer name, another holder), and when its lease is renewed; it is deleted
//! when the link closes or is revoked. Heartbeats write nothing.
//!
//! # Stale records: the rule
//!
//! A record names its **holder** (which running site holds the
//! connection; see [`crate::site::Site::with_incoming_holder`]) and carries
//! a **lease**: it counts as live until `lease_until`. The holder renews
//! the lease of each link it holds once a third of the lease has passed
//! ([`crate::site::Site::renew_incoming`]), so a live link's record is never
//! older than two thirds of a lease. A holder that dies without closing
//! its links (a crashed `serve`) leaves its records behind, and then:
//!
//! - they stop counting when their lease runs out ([`DEFAULT_LEASE`] after
//!   the last renewal at most): `status` and
//!   [`crate::site::Site::incoming_links`] ignore them from then on;
//! - a holder that starts again under the same name deletes every record
//!   it holds no connection for, and every record whose lease has run out
//!   ([`crate::site::Site::reconcile_incoming`]), so a restarted `serve`
//!   starts clean.
//!
//! Records of an older CA generation never count: `revoke-access` deletes
//! them, and a record that survived it is ignored.

use time::{Duration, OffsetDateTime};

/// How long an incoming-link record counts as live without being renewed
/// (60 s). Its holder renews it after a third of that (20 s).
pub const DEFAULT_LEASE: Duration = Duration::seconds(60);

/// The holder name of a site handle that was given none (see
/// [`crate::site::Site::with_incoming_holder`]).
pub const DEFAULT_HOLDER: &str = "default";

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
        format!("in-{}", crate::claim::hex(&digest.as_ref()[..16]))
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

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn record(lease_until: OffsetDateTime) -> IncomingRecord {
        IncomingRecord {
            peer_site_id: "east-id".into(),
            peer_site_name: "east".into(),
            link: "link1".into(),
            certificate_cn: "east-id".into(),
            certificate_serial: "01".into(),
            certificate_not_after: datetime!(2030-01-01 0:00 UTC),
            ca_generation: 1,
            since: datetime!(2026-01-01 0:00 UTC),
            holder: DEFAULT_HOLDER.into(),
            lease_until,
        }
    }

    #[test]
    fn names_are_safe_distinct_and_stable() {
        let a = IncomingRecord::key_name("east-id", "link1");
        assert_eq!(a.len(), 35);
        assert!(a.starts_with("in-"));
        assert!(a[3..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, IncomingRecord::key_name("east-id", "link1"));
        assert_ne!(a, IncomingRecord::key_name("east-id", "link2"));
        // The separator keeps "ab"+"c" and "a"+"bc" apart.
        assert_ne!(
            IncomingRecord::key_name("ab", "c"),
            IncomingRecord::key_name("a", "bc")
        );
        assert_eq!(
            IncomingRecord::key_name("../../x", "a/b\n"),
            IncomingRecord::key_name("../../x", "a/b\n")
        );
    }

    #[test]
    fn a_lease_is_live_until_it_runs_out_and_renewed_after_a_third() {
        let t0 = datetime!(2026-01-01 0:00 UTC);
        let r = record(t0 + DEFAULT_LEASE);
        assert!(r.is_live(t0));
        assert!(r.is_live(t0 + Duration::seconds(59)));
        assert!(!r.is_live(t0 + DEFAULT_LEASE));
        assert!(!r.renewal_due(t0 + Duration::seconds(19), DEFAULT_LEASE));
        assert!(r.renewal_due(t0 + Duration::seconds(20), DEFAULT_LEASE));
    }
}
