//! The records a site keeps in its [`crate::store::Store`], as they are
//! stored: plain data with serde, and the few rules that only read or
//! update one record.
//!
//! This module depends on no site, store, claim-redemption or transport
//! code (only on [`crate::token::Endpoint`], [`crate::link::LinkRecord`]
//! and [`crate::random::Random`]), so the store can depend on it alone.

pub(crate) mod claim;
mod incoming;
mod issued;
mod site;

pub use self::claim::{ClaimRecord, ClaimState, FailedAttempt};
pub use self::incoming::IncomingRecord;
pub use self::issued::{IssuedRecord, IssuedVia};
pub use self::site::{RevokedCert, SiteMode, SiteRecord, StoredCert};
pub use crate::link::LinkRecord;

pub(crate) use self::claim::hex;
