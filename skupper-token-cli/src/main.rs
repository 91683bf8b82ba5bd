//! The `skupper-token` command. Run `skupper-token --help`.
// The CLI is where the OS is allowed in: lift the workspace's I/O bans.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
// A command-line tool prints to its terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
