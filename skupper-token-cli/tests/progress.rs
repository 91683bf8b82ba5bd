//! Progress while `link status NAME --wait N` waits: frames only on a
//! terminal, cleared before the result; piped (a CI log), nothing but the
//! result line.
//!
//! The terminal is a real pseudo-terminal from util-linux's `script`.

// Tests start processes, use the clock and bind sockets.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
// A skipped check says so on stderr.
#![allow(clippy::print_stderr)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Home, Out, BIN};

/// east with a link to west (a cert token), east running, west not.
fn east_waiting_for_west() -> (Home, common::Daemon, u16) {
    let home = Home::new();
    let west_port = home.init("west");
    let east_port = home.init("east");
    let cert = home.file("cert.yaml");
    home.ok(
        "west",
        &["token", "create", cert.to_str().unwrap(), "-t", "cert"],
    );
    home.ok("east", &["link", "create", cert.to_str().unwrap()]);
    let east = home.serve("east", east_port);
    (home, east, west_port)
}

#[test]
fn piped_it_prints_only_the_result() {
    let (home, _east, west_port) = east_waiting_for_west();

    let out = home.run("east", &["link", "status", "link1", "--wait", "2"]);
    assert_eq!(out.code, 4, "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert!(!out.stderr.contains('\r'), "no frames: {out}");
    assert_eq!(out.stderr.lines().count(), 1, "one line: {out}");
    assert!(
        out.stderr
            .starts_with("error: Link link1 not connected (peer unreachable: "),
        "{out}"
    );
    assert!(out.stderr.ends_with(" after waiting 2s\n"), "{out}");

    // It waits, west starts, the link connects: the status line alone.
    let args = ["link", "status", "link1", "--wait", "60"];
    let waiting = home
        .cmd("east")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the wait");
    std::thread::sleep(Duration::from_secs(1));
    let _west = home.serve("west", west_port);
    let out = Out::from(waiting.wait_with_output().unwrap(), "east", &args);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.stdout, "Link link1 is connected\n", "{out}");
    assert_eq!(out.stderr, "", "{out}");
}

#[test]
fn on_a_terminal_it_redraws_one_line_and_clears_it() {
    let script = Command::new("script").arg("--version").output();
    if script.is_err() {
        assert!(
            std::env::var_os("SKUPPER_TOKEN_REQUIRE_TOOLS").is_none(),
            "script (util-linux) is missing but SKUPPER_TOKEN_REQUIRE_TOOLS is set"
        );
        eprintln!("note: script (util-linux) not found; skipping");
        return;
    }
    let (home, _east, _) = east_waiting_for_west();
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut line = vec![quote(BIN)];
    line.extend(home.base_args("east").iter().map(|a| quote(a)));
    line.extend(["link", "status", "link1", "--wait", "2"].map(String::from));
    // script runs the command on a new pseudo-terminal (stdout and stderr
    // both), copies what it writes to its own stdout, and (-e) exits with
    // the command's exit code.
    let output = Command::new("script")
        .args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    let screen = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(4), "{screen:?}");

    // Frames: the line is cleared and drawn again in place.
    const REDRAW: &str = "\r\x1b[2K";
    let frames = screen.matches(REDRAW).count();
    assert!(frames >= 2, "{frames} frames: {screen:?}");
    assert!(
        screen.contains("waiting up to 2s for link link1 to connect ("),
        "{screen:?}"
    );
    // The last frame is cleared, and the result starts on the clean line.
    let (_, last) = screen.rsplit_once(REDRAW).unwrap();
    assert!(
        last.starts_with("error: Link link1 not connected (peer unreachable: "),
        "{last:?}"
    );
    assert!(last.ends_with(" after waiting 2s\r\n"), "{last:?}");
}

/// `link create` with a claim token: while it redeems the claim (here
/// against a claims server that is not running, tried three times), a
/// spinner names the claims server on a terminal, and is cleared
/// before the error; piped, only the error.
#[test]
fn link_create_shows_the_redemption_on_a_terminal_only() {
    let home = Home::new();
    home.init("west");
    home.init("east");
    let token = home.token("west", "secret.yaml", &[]);
    let token = token.to_str().unwrap();

    let out = home.run("east", &["link", "create", token]);
    assert_eq!(out.code, 4, "{out}");
    assert!(!out.stderr.contains('\r'), "no frames: {out}");
    assert!(
        out.stderr
            .starts_with("error: Failed to redeem claim: cannot connect to 127.0.0.1:"),
        "{out}"
    );

    let script = Command::new("script").arg("--version").output();
    if script.is_err() {
        assert!(
            std::env::var_os("SKUPPER_TOKEN_REQUIRE_TOOLS").is_none(),
            "script (util-linux) is missing but SKUPPER_TOKEN_REQUIRE_TOOLS is set"
        );
        eprintln!("note: script (util-linux) not found; skipping the terminal part");
        return;
    }
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut line = vec![quote(BIN)];
    line.extend(home.base_args("east").iter().map(|a| quote(a)));
    line.extend(["link", "create", &quote(token)].map(String::from));
    let output = Command::new("script")
        .args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    let screen = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(4), "{screen:?}");
    const REDRAW: &str = "\r\x1b[2K";
    assert!(screen.matches(REDRAW).count() >= 2, "{screen:?}");
    assert!(
        screen.contains("redeeming the claim at 127.0.0.1:"),
        "{screen:?}"
    );
    let (_, last) = screen.rsplit_once(REDRAW).unwrap();
    assert!(
        last.starts_with("error: Failed to redeem claim: cannot connect to 127.0.0.1:"),
        "{last:?}"
    );
}
