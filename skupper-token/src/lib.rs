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
//! network (storage and transport come in through traits). That makes it
//! embeddable in other tools and lets a test harness run many sites in one
//! process, deterministically ([`harness::Network`]).
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
//! Your program provides the network, through a [`transport::Transport`],
//! and calls the site at three places:
//!
//! - the claims server (HTTPS): [`site::Site::redeem_claim`] for each
//!   request, answering with [`claim::RedeemError::http_status`] and
//!   [`claim::RedeemError::http_body`] when it refuses;
//! - the link listener (mutual TLS): [`site::Site::accept_incoming`] with
//!   the client's certificate chain and its hello. It authenticates the
//!   peer ([`site::Site::authenticate_peer`] alone only checks the
//!   certificate) *and* records the link, which is what makes
//!   [`site::Site::status`] count the remote site;
//! - the dialing side: [`site::Site::create_link`] redeems a claim token
//!   through [`transport::Transport::redeem_claim`], and
//!   [`site::Site::connect_link`] (or [`site::Site::process_links`],
//!   periodically) dials through [`transport::Transport::connect`].
//!
//! Here both sites live in one process and the "network" is a direct call;
//! a real transport does HTTPS and TLS at the two marked places.
//!
//! ```
//! use skupper_token::claim::RedeemRequest;
//! use skupper_token::pki::pem_to_der;
//! use skupper_token::random::SeededRandom;
//! use skupper_token::site::{LinkOptions, PeerHello, Site, SiteConfig, TokenOptions};
//! use skupper_token::store::MemoryStore;
//! use skupper_token::time::OffsetDateTime;
//! use skupper_token::token::CertToken;
//! use skupper_token::transport::{Dial, Transport, TransportError};
//!
//! /// East's way to reach west.
//! struct ToWest<'a> {
//!     west: &'a Site<MemoryStore>,
//!     now: OffsetDateTime,
//! }
//!
//! impl Transport for ToWest<'_> {
//!     fn redeem_claim(
//!         &self,
//!         _url: &str,
//!         _ca_pem: &str,
//!         request: &RedeemRequest,
//!     ) -> Result<CertToken, TransportError> {
//!         // An HTTPS client POSTs to `url`, trusting only `ca_pem`; west's
//!         // claims server answers each request with this call.
//!         let mut rng = SeededRandom::new(2);
//!         self.west
//!             .redeem_claim(request, self.now, &mut rng)
//!             .map_err(|e| TransportError::Refused {
//!                 status: e.http_status(),
//!                 body: e.http_body(),
//!             })
//!     }
//!
//!     fn connect(&self, dial: &Dial<'_>) -> Result<(), TransportError> {
//!         // A TLS client connects to `dial.endpoint` with the certificate in
//!         // `dial.credentials` and sends a hello; west's listener passes the
//!         // client's chain and the hello to accept_incoming.
//!         let der = pem_to_der(&dial.credentials.cert_pem).map_err(|e| {
//!             TransportError::Protocol { reason: e.to_string() }
//!         })?;
//!         let hello = PeerHello {
//!             site_id: dial.site_id.to_owned(),
//!             site_name: dial.site_name.to_owned(),
//!             link: dial.link.to_owned(),
//!         };
//!         self.west
//!             .accept_incoming(&[&der], &hello, self.now)
//!             .map(|_| ())
//!             .map_err(|e| TransportError::Rejected { reason: e.to_string() })
//!     }
//! }
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
//! // skupper link create secret.yaml  (on east): redeems the claim
//! let network = ToWest { west: &west, now };
//! let link = east.create_link(token.encode().as_bytes(), &LinkOptions::default(), &network, now)?;
//! // ... and dials west.
//! east.connect_link(&link.name, &network, now)?;
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
mod object_name;
pub mod pki;
pub mod protocol;
pub mod random;
pub mod records;
pub mod site;
pub mod site_id;
pub mod store;
pub mod token;
pub mod transport;
pub mod version;
mod yaml;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
