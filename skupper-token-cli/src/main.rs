//! The `skupper-token` command (the full CLI arrives with its own issue).
#![forbid(unsafe_code)]

fn main() {}
