//! `link status [NAME] --wait N` with real `serve` processes: it returns at
//! once, with exit code 1 and the reason, for a link that will not connect
//! (this site not running, the remote site revoked access, the claim
//! redemption failed), exit code 4 when the wait runs out, and without a
//! name it waits for every link.
//!
//! "At once" is checked against the wait asked for (120 s), which these
//! commands would otherwise sit out: not a speed budget.

// Tests start processes, use the clock and bind sockets.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::time::{Duration, Instant};

use common::Home;
use skupper_token::link::LinkState;
use skupper_token::site::{LinkError, LinkOptions, Site};
use skupper_token_cli::runtime::redeem::RedeemClient;
use skupper_token_cli::FileStore;

const LONG_WAIT: &str = "120";

/// Runs `link status ARGS --wait 120` on `ns`; returns what it printed,
/// after checking that it returned before the wait ran out.
fn wait_long(home: &Home, ns: &str, args: &[&str]) -> common::Out {
    let mut all = vec!["link", "status"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--wait", LONG_WAIT]);
    let started = Instant::now();
    let out = home.run(ns, &all);
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "it sat out the whole wait: {out}"
    );
    out
}

#[test]
fn a_site_that_is_not_running_will_not_connect() {
    let home = Home::new();
    home.init("west");
    home.init("east");
    let cert = home.file("cert.yaml");
    home.ok(
        "west",
        &["token", "create", cert.to_str().unwrap(), "-t", "cert"],
    );
    home.ok("east", &["link", "create", cert.to_str().unwrap()]);
    for args in [&["link1"][..], &[][..]] {
        let out = wait_long(&home, "east", args);
        assert_eq!(out.code, 1, "{out}");
        assert_eq!(
            out.stderr.trim(),
            "error: Link link1 will not connect: site not running: start it with 'skupper-token -n east serve'",
            "{out}"
        );
    }
}

#[test]
fn a_link_whose_access_was_revoked_will_not_connect() {
    let home = Home::new();
    let west_port = home.init("west");
    let east_port = home.init("east");
    let west_id = home.ok("west", &["-o", "json", "status"]).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let _west = home.serve("west", west_port);
    let east = home.serve("east", east_port);
    let token = home.token("west", "secret.yaml", &[]);
    home.ok("east", &["link", "create", token.to_str().unwrap()]);
    let out = home.ok("east", &["link", "status", "link1", "--wait", "30"]);
    assert_eq!(out.stdout, "Link link1 is connected\n", "{out}");

    home.ok("west", &["revoke-access"]);
    home.wait_for(
        "east",
        &["link", "status", "link1"],
        "access revoked by west",
    );
    let check = |out: &common::Out| {
        assert_eq!(out.code, 1, "{out}");
        let first = out.stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!(
                "error: Link link1 will not connect: access revoked by west (site {west_id}) at "
            )),
            "{out}"
        );
        // One line: what happened, then the command, once.
        assert_eq!(out.stderr.lines().count(), 1, "{out}");
        assert!(
            first.ends_with(
                "; to link again, get a new token from that site and replace this link with it: 'skupper-token -n east link create FILE --replace'"
            ),
            "{out}"
        );
    };
    check(&wait_long(&home, "east", &["link1"]));
    check(&wait_long(&home, "east", &[]));

    // The revocation is the link's state, so it outlives the process that
    // received the notice.
    east.stop();
    // The record knows who revoked it: the remote site's name, without a
    // running site to ask.
    let stopped = home
        .ok("east", &["-o", "json", "link", "status", "link1"])
        .json();
    assert_eq!(stopped["state"], "revoked");
    assert_eq!(stopped["remote-site-name"], "west");
    assert_eq!(stopped["remote-site-id"], west_id.as_str());
    let _east = home.serve("east", east_port);
    check(&wait_long(&home, "east", &["link1"]));
}

#[test]
fn a_link_whose_claim_was_refused_will_not_connect() {
    let home = Home::new();
    let west_port = home.init("west");
    let east_port = home.init("east");
    let _west = home.serve("west", west_port);
    let _east = home.serve("east", east_port);
    let good = home.token("west", "good.yaml", &[]);
    let forged: String = std::fs::read_to_string(&good)
        .unwrap()
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("password: ") {
                "  password: d3JvbmctcGFzc3dvcmQ=".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    // What 'link create' does, without its clean-up: the refused link
    // stays, failed (as after a crash, or from another program on the
    // site).
    let site = Site::open(FileStore::open(home.site_dir("east")).unwrap()).unwrap();
    let now = time::OffsetDateTime::now_utc();
    site.add_link(
        forged.as_bytes(),
        &LinkOptions::default(),
        now,
        &mut skupper_token::random::SeededRandom::new(7),
    )
    .unwrap();
    let redemption = site.redeem_link("link1").unwrap();
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(RedeemClient::default().redeem(
            &redemption.url,
            &redemption.ca_pem,
            &redemption.request,
        ));
    let refused = site.handle_redemption(&redemption, answer, now);
    assert!(
        matches!(&refused, Err(LinkError::ClaimRedemption { reason, .. }) if reason == "Claim refused"),
        "{refused:?}"
    );
    assert!(matches!(
        site.link("link1").unwrap().state(),
        LinkState::Failed { .. }
    ));

    let out = wait_long(&home, "east", &["link1"]);
    assert_eq!(out.code, 1, "{out}");
    let mut lines = out.stderr.lines();
    assert!(
        lines.next().unwrap_or_default().starts_with(
            "error: Link link1 will not connect: Failed to redeem claim: Claim refused"
        ),
        "{out}"
    );
    assert_eq!(
        lines.last(),
        Some("delete it with 'skupper-token -n east link delete link1' and create it again with a new token"),
        "{out}"
    );
}

#[test]
fn without_a_name_it_waits_for_every_link_and_times_out_with_code_4() {
    let home = Home::new();
    let west_port = home.init("west");
    let north_port = home.init("north");
    let east_port = home.init("east");
    for (ns, file) in [("west", "west.yaml"), ("north", "north.yaml")] {
        let path = home.file(file);
        home.ok(
            ns,
            &["token", "create", path.to_str().unwrap(), "-t", "cert"],
        );
        home.ok("east", &["link", "create", path.to_str().unwrap()]);
    }
    let _east = home.serve("east", east_port);
    let _west = home.serve("west", west_port);
    home.ok("east", &["link", "status", "link1", "--wait", "30"]);

    // north is not running: link2 keeps trying, and the wait runs out.
    let out = home.run("east", &["link", "status", "--wait", "2"]);
    assert_eq!(out.code, 4, "{out}");
    assert_eq!(out.stderr.lines().count(), 1, "{out}");
    let error = out.stderr.trim_end();
    assert!(
        error.starts_with("error: Link link2 not connected (peer unreachable: "),
        "{out}"
    );
    assert!(error.ends_with("after waiting 2s"), "{out}");
    assert_eq!(out.stdout, "", "{out}");

    let _north = home.serve("north", north_port);
    let out = home.ok("east", &["link", "status", "--wait", "60"]);
    assert!(
        out.stdout.starts_with(
            "Links created from this site:\n  Link link1 is connected\n  Link link2 is connected\n"
        ),
        "{out}"
    );
}
