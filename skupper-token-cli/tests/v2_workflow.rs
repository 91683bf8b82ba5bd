//! The user documentation's scenario with Skupper 2.x files, end to end
//! with real `serve` processes on loopback (cli_workflow.rs has the 1.x
//! one): an AccessToken allowing two redemptions links two sites and
//! refuses a third, leaving nothing behind; an expired one is refused;
//! `token status` counts both; west, linked to three sites (one outgoing
//! link, two incoming), revokes access: the incoming links drop, the
//! outgoing one stays, outstanding AccessTokens are void, and the sites
//! relink after `link delete`. A new AccessToken or Link file to a site
//! already linked is "Already connected", until `--replace`.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::PathBuf;
use std::time::Duration;

mod common;

use common::{Home, Out};

/// `token issue FILE EXTRA...` on `ns`; returns the file.
fn issue(home: &Home, ns: &str, file: &str, extra: &[&str]) -> PathBuf {
    let path = home.file(file);
    let mut args = vec!["token", "issue", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    home.ok(ns, &args);
    path
}

fn redeem(home: &Home, ns: &str, file: &std::path::Path) -> Out {
    home.run(ns, &["token", "redeem", file.to_str().unwrap()])
}

/// The row of grant `name` in `token status` on `ns`.
fn grant_row(home: &Home, ns: &str, name: &str) -> String {
    let status = home.ok(ns, &["token", "status"]).stdout;
    status
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no grant {name}: {status}"))
        .to_owned()
}

const NO_LINKS: &str = "There are no links configured or connected";

#[test]
fn three_sites_with_access_tokens_uses_expiry_status_revoke_and_relink() {
    let home = Home::new();
    let sites = ["west", "east", "north", "south"];
    let ports: Vec<u16> = sites.iter().map(|s| home.init(s)).collect();
    // `late` only redeems (and is refused): it never needs to run.
    home.init("late");
    let daemons: Vec<_> = sites
        .iter()
        .zip(&ports)
        .map(|(s, p)| home.serve(s, *p))
        .collect();

    // west links to north: its outgoing link.
    let to_north = issue(&home, "north", "north.yaml", &[]);
    assert_eq!(redeem(&home, "west", &to_north).code, 0);

    // $ skupper-token -n west token issue west.yaml --redemptions-allowed 2 --expiration-window 30m
    let token = issue(
        &home,
        "west",
        "west.yaml",
        &[
            "--name",
            "west-grant",
            "--redemptions-allowed",
            "2",
            "--expiration-window",
            "30m",
        ],
    );
    for ns in ["east", "south"] {
        let out = redeem(&home, ns, &token);
        assert_eq!(out.code, 0, "{out}");
        assert!(out.stdout.contains("(name=link1)"), "{out}");
    }
    // The third redemption is refused with Skupper's reason, and leaves
    // nothing.
    let out = redeem(&home, "late", &token);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains(
            "the AccessToken of link \"link1\" was not redeemed: Controller got failed response: 404 (Not Found) No such access granted"
        ),
        "{out}"
    );
    assert!(home.links_of("late").contains(NO_LINKS), "nothing left");

    // An AccessToken redeemed after its window: refused, as Skupper does.
    let short = issue(
        &home,
        "west",
        "short.yaml",
        &["--name", "short", "--expiration-window", "1s"],
    );
    std::thread::sleep(Duration::from_millis(1500));
    let out = redeem(&home, "late", &short);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr
            .contains("Controller got failed response: 404 (Not Found) No such claim"),
        "{out}"
    );
    assert!(home.links_of("late").contains(NO_LINKS));

    // $ skupper-token -n west token status
    let used = grant_row(&home, "west", "west-grant");
    assert!(used.contains(" 2/2 "), "{used}");
    assert!(used.ends_with("used up"), "{used}");
    let expired = grant_row(&home, "west", "short");
    assert!(expired.contains(" 0/1 "), "{expired}");
    assert!(expired.ends_with("expired"), "{expired}");

    // $ skupper-token -n west status: linked to 3 other sites.
    for ns in ["west", "east", "south"] {
        home.ok(ns, &["link", "status", "link1", "--wait", "20"]);
    }
    home.wait_for("west", &["status"], "It is linked to 3 other sites.");
    // One outgoing link, two incoming.
    let links = home.links_of("west");
    assert!(
        links.starts_with("Links created from this site:\n  Link link1 is connected\n"),
        "{links}"
    );
    for ns in ["east", "south"] {
        let line = format!(
            "  Incoming link from site {ns} ({}) connected since ",
            home.site_id(ns)
        );
        assert!(links.contains(&line), "{links}");
    }

    // A new AccessToken, or a Link file, to a site east is linked to:
    // Already connected, and nothing is redeemed.
    let west_id = home.site_id("west");
    let again = issue(&home, "west", "again.yaml", &["--name", "again"]);
    let generated = home.file("generated.yaml");
    home.ok(
        "west",
        &["link", "generate", "-f", generated.to_str().unwrap()],
    );
    for file in [&again, &generated] {
        let out = home.run("east", &["link", "create", file.to_str().unwrap()]);
        assert_eq!(out.code, 1, "{out}");
        assert!(
            out.stderr
                .contains(&format!("Already connected to \"{west_id}\"")),
            "{out}"
        );
        assert!(
            out.stderr.contains(&format!(
                "'skupper-token -n east link create {} --replace'",
                file.display()
            )),
            "{out}"
        );
    }
    assert!(grant_row(&home, "west", "again").contains(" 0/1 "));
    // $ skupper-token -n east link create again.yaml --replace
    home.ok(
        "east",
        &["link", "create", again.to_str().unwrap(), "--replace"],
    );
    assert!(grant_row(&home, "west", "again").contains(" 1/1 "));
    home.ok("east", &["link", "status", "link1", "--wait", "20"]);
    home.wait_for("west", &["status"], "It is linked to 3 other sites.");

    // An AccessToken issued before revoke-access is void after it.
    let outstanding = issue(&home, "west", "outstanding.yaml", &[]);
    // $ skupper-token -n west revoke-access
    let out = home.ok("west", &["revoke-access"]);
    assert_eq!(
        out.stdout.trim(),
        "Access to site \"west\" revoked: new CA (generation 2); 0 claim token(s) and 1 AccessToken(s) that could still have been used voided; every incoming link must be recreated with a new token."
    );
    home.wait_for("west", &["status"], "It is linked to 1 other site.");
    assert_eq!(
        home.ok("west", &["link", "status", "link1"]).stdout.trim(),
        "Link link1 is connected",
        "outgoing links stay connected"
    );
    for ns in ["east", "south"] {
        let status = home.wait_for(ns, &["link", "status", "link1"], "access revoked by west");
        assert!(
            status.starts_with("Link link1 not connected (access revoked by west"),
            "{status}"
        );
    }
    let out = redeem(&home, "late", &outstanding);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr
            .contains("the server's certificate is not from the CA in the token"),
        "{out}"
    );
    assert!(home.links_of("late").contains(NO_LINKS));

    // Relink: each site deletes its revoked link, then links with a new
    // AccessToken (east) or a new Link file (south).
    let fresh = issue(&home, "west", "fresh.yaml", &[]);
    let file = home.file("link.yaml");
    home.ok("west", &["link", "generate", "-f", file.to_str().unwrap()]);
    for (ns, file) in [("east", &fresh), ("south", &file)] {
        home.ok(ns, &["link", "delete", "link1"]);
        let out = home.ok(ns, &["link", "create", file.to_str().unwrap()]);
        assert!(out.stdout.contains("(name=link1)"), "{out}");
        home.ok(ns, &["link", "status", "link1", "--wait", "20"]);
    }
    home.wait_for("west", &["status"], "It is linked to 3 other sites.");
    drop(daemons);
}
