//! The site's network on tokio: link connections driven over
//! tokio-rustls.
//!
//! - [`claims`]: the claims endpoint on hyper (a service to mount, and
//!   the TLS server `serve` runs).
//! - [`redeem`]: the claim redemption client on hyper.
//! - [`driver`]: runs one core [`skupper_token::protocol::Connection`]
//!   over an async stream (the drain rule, timers, pings, goodbyes).

pub mod claims;
pub mod driver;
pub mod redeem;
