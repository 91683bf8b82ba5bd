//! The site's network on tokio: link connections driven over
//! tokio-rustls.
//!
//! - [`driver`]: runs one core [`skupper_token::protocol::Connection`]
//!   over an async stream (the drain rule, timers, pings, goodbyes).

pub mod driver;
