//! # skupper-token
//!
//! Skupper-compatible site-linking tokens as an I/O-free state machine.
//!
//! One site creates a token; another site uses it to create a link. Claim
//! tokens are exchanged for a certificate when the link is made, limited by
//! time and number of uses; cert tokens carry a certificate issued by the
//! site's own certificate authority. All traffic between sites is mutual TLS
//! under that CA, and the issuing site can revoke access.
//!
//! This crate does no I/O: it reads no clock (every operation takes `now`),
//! no OS randomness (a [`random::Random`] is passed in), no files and no
//! network (storage comes in through a trait; for the network the site
//! says what to send where and takes the answer back). That makes it
//! embeddable in other tools and lets a test harness run many sites in one
//! process, deterministically ([`harness::Network`]).
//!
//! # Token files
//!
//! Both generations of Skupper token files are read and written
//! byte-for-byte as Skupper does: [`token`] has the Skupper 1.x claim and
//! cert tokens, [`v2`] the Skupper 2.x AccessTokens and Link files (Links
//! and their Secret), and [`token::TokenFile::decode`] reads any of them,
//! as `link create` takes them. [`v2::grant`] has the rules of a 2.x access
//! grant on the issuing site and [`v2::redeem`] the redeeming side's
//! request and its reading of the answer.
//!
//! # Embedding a site
//!
//! A [`site::Site`] is a handle on a [`store::Store`]: [`store::MemoryStore`],
//! or your own implementation of the trait (a database, a key-value
//! service; `examples/custom_store.rs` is a complete one, and the CLI crate's
//! `FileStore` keeps a site in a directory). Time is a [`time::OffsetDateTime`]
//! argument: the `time` crate is re-exported as [`skupper_token::time`](time),
//! so you need not depend on it yourself.
//!
//! Your program provides the network and calls the site at three places;
//! the site never blocks on it: it says what must be done
//! ([`link_ops`]) and takes the outcome back.
//!
//! - the claims server (HTTPS): [`site::Site::redeem_claim`] for each
//!   request, answering with [`claim::RedeemError::http_status`] and
//!   [`claim::RedeemError::http_body`] when it refuses;
//! - the link listener (mutual TLS): [`site::Site::accept_incoming`] with
//!   the client's certificate chain and its hello. It authenticates the
//!   peer ([`site::Site::authenticate_peer`] alone only checks the
//!   certificate) *and* records the link, which is what makes
//!   [`site::Site::status`] count the remote site;
//! - the dialing side: [`site::Site::create_link`] gives the claim to
//!   redeem ([`link_ops::Redemption`]), whose answer goes to
//!   [`site::Site::handle_redemption`]; [`site::Site::dial_link`] (or
//!   [`site::Site::process_links`], periodically) gives the links to dial
//!   ([`link_ops::Dial`]), and [`site::Site::handle_dial`] takes the
//!   outcome. Over the TLS connection both sides run
//!   [`protocol::Connection`].
//!
//! Here both sites live in one process and the "network" is a direct call;
//! a real program does HTTPS and TLS at the two marked places.
//!
//! ```
//! use skupper_token::pki::pem_to_der;
//! use skupper_token::random::SeededRandom;
//! use skupper_token::site::{LinkOptions, PeerHello, Site, SiteConfig, TokenOptions};
//! use skupper_token::store::MemoryStore;
//! use skupper_token::time::OffsetDateTime;
//! use skupper_token::transport::TransportError;
//!
//! // A real site takes the time from a clock and randomness from the OS
//! // (the CLI's OsRandom); a seed makes this example repeatable.
//! let now = OffsetDateTime::from_unix_timestamp(1_790_000_000)?;
//! let mut rng = SeededRandom::new(1);
//! let west = Site::create(MemoryStore::new(), &SiteConfig::new("west"), now, &mut rng)?;
//! let east = Site::create(MemoryStore::new(), &SiteConfig::new("east"), now, &mut rng)?;
//!
//! // skupper token create secret.yaml  (on west)
//! let token = west.create_token(&TokenOptions::claim(), now, &mut rng)?;
//! // skupper link create secret.yaml  (on east): the claim to redeem...
//! let created = east.create_link(token.encode().as_bytes(), &LinkOptions::default(), now, &mut rng)?;
//! let redemption = created.redemption.expect("a claim token");
//! // ... which an HTTPS client POSTs to `redemption.url`, trusting only
//! // `redemption.ca_pem`; west's claims server answers with this call.
//! let answer = west
//!     .redeem_claim(&redemption.request, now, &mut rng)
//!     .map_err(|e| TransportError::Refused { status: e.http_status(), body: e.http_body() });
//! let link = east.handle_redemption(&redemption, answer, now)?;
//!
//! // East dials west: a TLS client connects to `dial.endpoint` with the
//! // certificate in `dial.credentials` and sends the hello; west's
//! // listener passes the client's chain and the hello to accept_incoming.
//! let dial = east.dial_link(&link.name)?;
//! let der = pem_to_der(&dial.credentials.cert_pem)?;
//! let hello = PeerHello {
//!     site_id: dial.local.site_id.clone(),
//!     site_name: dial.local.site_name.clone(),
//!     link: dial.link.clone(),
//! };
//! let accepted = west
//!     .accept_incoming(&[&der], &hello, now)
//!     .map(|_| ())
//!     .map_err(|e| TransportError::Rejected { reason: e.to_string() });
//! east.handle_dial(&dial, accepted, now)?;
//!
//! assert_eq!(east.link_status("link1")?.to_string(), "Link link1 is connected");
//! assert_eq!(
//!     west.status(now)?.to_string(),
//!     "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 1 other site."
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Modules, in dependency order
//!
//! Each module uses only modules above it (its `use crate::` lines), so
//! there is no import cycle through the store:
//!
//! 1. [`random`], [`version`], [`site_id`], `object_name`, `yaml`,
//!    [`duration`]: leaves;
//! 2. [`token`] (token files), [`pki`] and [`keys`] (certificates);
//! 3. [`link`] (outgoing link records and states);
//! 4. [`records`]: every record type a site stores, plain data;
//! 5. [`store`]: the [`store::Store`] trait over those records, and
//!    [`store::MemoryStore`];
//! 6. `claim_queue`, then [`claim`] (the redemption rules, from request to
//!    HTTP status), and [`incoming`];
//! 7. [`transport`] (the network a site is given). One edge still goes
//!    back up: [`claim::RedeemError::is_retryable`] asks
//!    [`transport::status_is_retryable`];
//! 8. [`site`]: the site, which uses all of the above;
//! 9. [`protocol`] (the link protocol; it takes a [`site::PeerHello`]) and
//!    [`harness`] (many sites in one process).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// The `time` crate, whose [`OffsetDateTime`](time::OffsetDateTime) and
/// [`Duration`](time::Duration) every operation takes: use it from here
/// rather than adding your own dependency (and matching its version).
pub use time;

pub mod claim;
mod claim_queue;
pub mod duration;
pub mod harness;
pub mod incoming;
#[doc(inline)]
pub use pki::keys;
pub mod link;
pub mod link_ops;
mod object_name;
pub mod pki;
pub mod protocol;
pub mod random;
pub mod records;
pub mod site;
pub mod site_id;
mod spend;
pub mod store;
pub mod token;
pub mod transport;
pub mod v2;
pub mod version;
mod yaml;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
