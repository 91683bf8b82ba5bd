//! `init --force` does not replace a site while `serve` runs it (that
//! orphaned the daemon: its control socket vanished and a new `serve`
//! could not bind), and one site has one `serve`. The lock that says so is
//! released when `serve` exits, however it exits.

// Tests start processes.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Home;

#[test]
fn init_force_is_refused_while_the_site_is_served() {
    let home = Home::new();
    let port = home.init("west");
    let id = home.site_id("west");
    let mut daemon = home.serve("west", port);
    let pid = daemon.pid();

    let out = home.run("west", &["init", "--force"]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        out.stderr,
        format!(
            "error: cannot replace the site in namespace \"west\": 'serve' (process {pid}) is running for this site\n\
             stop it first (Ctrl-C in its terminal, or 'kill -TERM {pid}'), then run 'skupper-token -n west init --force' again\n"
        ),
        "{out}"
    );
    assert_eq!(home.site_id("west"), id, "the site was not replaced");
    // The running site still answers on its control socket.
    let out = home.ok("west", &["status"]);
    assert_eq!(out.stderr, "", "no 'site not running' note: {out}");
    assert!(!daemon.exited());

    // A second `serve` is refused the same way, as a listener that cannot
    // bind (exit 6): the first one holds the site's ports.
    let out = home.run("west", &["serve"]);
    assert_eq!(out.code, 6, "{out}");
    assert_eq!(
        out.stderr,
        format!(
            "error: cannot serve namespace \"west\": 'serve' (process {pid}) is running for this site\n\
             stop it first (Ctrl-C in its terminal, or 'kill -TERM {pid}')\n"
        ),
        "{out}"
    );

    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
    home.ok("west", &["init", "--force"]);
    assert_ne!(home.site_id("west"), id, "replaced once serve stopped");
}

#[test]
fn a_killed_serve_leaves_no_lock_behind() {
    let home = Home::new();
    let port = home.init("west");
    let id = home.site_id("west");
    let mut daemon = home.serve("west", port);
    let killed = Command::new("kill")
        .args(["-KILL", &daemon.pid().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon.exited() {
        assert!(Instant::now() < deadline, "serve did not die");
        std::thread::sleep(Duration::from_millis(20));
    }
    home.ok("west", &["init", "--force"]);
    assert_ne!(home.site_id("west"), id);
}
