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

use time::Duration;

pub use crate::records::IncomingRecord;

/// How long an incoming-link record counts as live without being renewed
/// (60 s). Its holder renews it after a third of that (20 s).
pub const DEFAULT_LEASE: Duration = Duration::seconds(60);

/// The holder name of a site handle that was given none (see
/// [`crate::site::Site::with_incoming_holder`]).
pub const DEFAULT_HOLDER: &str = "default";

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use time::OffsetDateTime;

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
