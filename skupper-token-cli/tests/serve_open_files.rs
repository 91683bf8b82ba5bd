//! `serve` raises its soft limit on open files to the hard limit when it
//! starts: every link is a socket, and the usual soft limit of 1,024 would
//! stop a site at about a thousand links.

// Tests start processes and bind sockets.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, Home};

/// The soft and hard limits on open files of process `pid`, from /proc.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("/proc limits");
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .expect("a Max open files line");
    let mut fields = line.split_whitespace();
    let soft = fields.next().expect("a soft limit").to_owned();
    let hard = fields.next().expect("a hard limit").to_owned();
    (soft, hard)
}

#[test]
fn serve_raises_its_open_file_limit_to_the_hard_limit() {
    let home = Home::new();
    let claims_port = home.init("west");
    // `serve` started with a soft limit of 256 (the shell lowers it, then
    // becomes serve).
    let serve = home.cmd("west");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"ulimit -Sn 256 && exec "$0" "$@""#)
        .arg(serve.get_program())
        .args(serve.get_args())
        .arg("serve")
        .env_remove("SKUPPER_TOKEN_HOME")
        .env_remove("SKUPPER_TOKEN_NAMESPACE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut daemon = Daemon {
        child: Some(cmd.spawn().expect("start serve")),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", claims_port)).is_err() {
        assert!(!daemon.exited(), "serve exited before it listened");
        assert!(Instant::now() < deadline, "serve did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (soft, hard) = open_file_limits(daemon.pid());
    assert_ne!(
        hard, "256",
        "the hard limit must be above 256 for this test"
    );
    assert_eq!(soft, hard, "serve's soft limit is its hard limit");
    let (code, output) = daemon.stop();
    assert_eq!(code, Some(0), "{output}");
    assert!(!output.contains("open-file limit"), "{output}");
}
