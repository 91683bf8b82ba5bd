//! The records a site keeps in its [`crate::store::Store`], as they are
//! stored: plain data with serde, and the few rules that only read or
//! update one record.
//!
//! This module depends on no site, store, claim-redemption or transport
//! code (only on [`crate::token::Endpoint`], [`crate::link::LinkRecord`]
//! and [`crate::random::Random`]), so the store can depend on it alone.

//! # Schema versions
//!
//! A record kind whose layout changed in a way an older reader would get
//! wrong carries a `schema-version`: records from before it read as 1, and
//! a reader refuses a record of a newer version than its own instead of
//! dropping what it does not know. Link records are at
//! [`LINK_RECORD_SCHEMA`] (2: who revoked access and when), claim records
//! at [`CLAIM_RECORD_SCHEMA`] (2: the certificates of their latest
//! redemptions, [`ClaimRecord::issued`]), grant records at
//! [`GRANT_RECORD_SCHEMA`] (1). The other kinds have not changed shape.

pub(crate) mod claim;
mod grant;
mod incoming;
mod issued;
mod site;

pub use self::claim::{ClaimRecord, ClaimState, FailedAttempt, CLAIM_RECORD_SCHEMA};
pub use self::grant::{GrantRecord, GrantState, GRANT_RECORD_SCHEMA};
pub use self::incoming::IncomingRecord;
pub use self::issued::{IssuedBatch, IssuedCert, IssuedRecord, IssuedVia, CLAIM_ISSUED_KEPT};
pub use self::site::{RevokedCert, SiteMode, SiteRecord, StoredCert};
pub use crate::link::{LinkRecord, LINK_RECORD_SCHEMA};

pub(crate) use self::claim::hex;
