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
//! process, deterministically.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod claim;
mod claim_queue;
pub mod duration;
pub mod harness;
pub mod keys;
pub mod link;
pub mod pki;
pub mod random;
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
