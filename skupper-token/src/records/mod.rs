//! The records a site keeps in its [`crate::store::Store`], as they are
//! stored: plain data with serde, and the few rules that only read or
//! update one record.
//!
//! This module depends on no site, store, claim-redemption or transport
//! code (only on [`crate::token::Endpoint`], [`crate::link::LinkRecord`]
//! and [`crate::random::Random`]), so the store can depend on it alone.

//! # Schema versions
//!
//! Records carry no version of their own unless their shape changed in a
//! way an older reader would get wrong; then they say which
//! [`SCHEMA_VERSION`] wrote them, records from before read as 1, and a
//! reader refuses a record of a newer schema than its own instead of
//! dropping what it does not know. Schema 2: a claim record holds the
//! certificates its redemptions issued ([`ClaimRecord::issued`]).

pub(crate) mod claim;
mod incoming;
mod issued;
mod site;

pub use self::claim::{ClaimRecord, ClaimState, FailedAttempt};
pub use self::incoming::IncomingRecord;
pub use self::issued::{IssuedBatch, IssuedCert, IssuedRecord, IssuedVia, CLAIM_ISSUED_KEPT};
pub use self::site::{RevokedCert, SiteMode, SiteRecord, StoredCert};
pub use crate::link::LinkRecord;

pub(crate) use self::claim::hex;

/// The schema the records this program writes follow (see the module
/// documentation).
pub const SCHEMA_VERSION: u32 = 2;
