//! The `skupper-token` command (the full CLI arrives with its own issue).
// The CLI is where the OS is allowed in: lift the workspace's I/O bans.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use std::process::ExitCode;

#[allow(clippy::print_stderr)]
fn main() -> ExitCode {
    eprintln!("skupper-token: the command line is not implemented yet");
    ExitCode::from(2)
}
