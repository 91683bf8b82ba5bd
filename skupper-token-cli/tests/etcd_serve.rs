//! `serve --store etcd://...`: the claims endpoint redeems against etcd.
//! Other sites (in files) redeem a claim over HTTPS; the use is spent in
//! etcd; with etcd stopped a redemption answers 503 and spends nothing,
//! and once etcd is back a redemption succeeds.
// The CLI is where the OS is allowed in: its tests use files, threads,
// clocks and processes.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::time::{Duration, Instant};

use common::etcd::Etcd;
use common::{free_port, Home};

/// The claim `name` as `token status -o json` shows it.
fn claim(home: &Home, store: &str, name: &str) -> serde_json::Value {
    let status = home
        .ok_on(store, "west", &["-o", "json", "token", "status"])
        .json();
    status["claims"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no claim {name} in {status}"))
}

#[test]
fn serve_redeems_claims_against_etcd_and_answers_503_without_it() {
    let mut etcd = Etcd::start();
    let home = Home::new();
    let store = etcd.store_url("/skupper");
    let claims_port = free_port();
    let (claims, ir, edge) = (
        claims_port.to_string(),
        free_port().to_string(),
        free_port().to_string(),
    );
    home.ok_on(
        &store,
        "west",
        &[
            "init",
            "--ingress-host",
            "127.0.0.1",
            "--claims-port",
            &claims,
            "--inter-router-port",
            &ir,
            "--edge-port",
            &edge,
        ],
    );
    let mut west = home.serve_with("west", claims_port, &["--store", &store]);
    let token = home.file("west.yaml");
    home.ok_on(
        &store,
        "west",
        &["token", "create", token.to_str().unwrap(), "--uses", "2"],
    );
    let name = {
        let status = home
            .ok_on(&store, "west", &["-o", "json", "token", "status"])
            .json();
        status["claims"][0]["name"].as_str().unwrap().to_owned()
    };
    let token = token.to_str().unwrap();

    // A site in files redeems the claim through west's HTTPS endpoint: the
    // use is spent in etcd.
    home.init("east");
    home.ok("east", &["link", "create", token, "--name", "to-west"]);
    let c = claim(&home, &store, &name);
    assert_eq!(
        (c["claims-made"].as_u64(), c["uses-remaining"].as_u64()),
        (Some(1), Some(1)),
        "{c}"
    );

    // etcd stopped: the redemption is answered 503 (the redeemer, after
    // its retries, exits 4: try again) and nothing is spent.
    home.init("south");
    etcd.stop();
    let out = home.run("south", &["link", "create", token, "--name", "to-west"]);
    assert_eq!(out.code, 4, "{out}");
    assert!(
        out.stderr
            .contains("Failed to redeem claim: Internal error"),
        "{out}"
    );
    assert!(!west.exited(), "serve exited while etcd was down");
    etcd.resume();
    let c = claim(&home, &store, &name);
    assert_eq!(
        (c["claims-made"].as_u64(), c["uses-remaining"].as_u64()),
        (Some(1), Some(1)),
        "{c}"
    );

    // etcd back: the same redemption succeeds and spends the last use.
    home.ok("south", &["link", "create", token, "--name", "to-west"]);
    let status = home
        .ok_on(&store, "west", &["-o", "json", "token", "status"])
        .json();
    let used_up = status["claims"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["name"] != name.as_str() || c["uses-remaining"] == 0);
    assert!(used_up, "{status}");
    let (code, log) = west.stop();
    assert_eq!(code, Some(0), "{log}");
    // West answered the redemptions without etcd with 503, never 500.
    let answered = |status: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("claim {name:?} from site")))
            .filter(|l| l.contains(&format!(": {status} ")))
            .count()
    };
    assert!(answered("503") >= 1, "{log}");
    assert_eq!(answered("500"), 0, "{log}");
    assert_eq!(answered("200"), 2, "{log}");
}

/// Two machines (two homes) share west in etcd; west is served on the
/// first. `status` on the second counts the link that the first one's
/// `serve` holds (its incoming-link record, in etcd). `revoke-access` on
/// the second, which has no control socket to tell the running `serve`,
/// still reaches it through etcd: east's link is dropped with the
/// revocation notice.
#[test]
fn revoke_access_from_another_machine_reaches_the_running_serve() {
    let etcd = Etcd::start();
    let here = Home::new();
    let elsewhere = Home::new();
    let store = etcd.store_url("/skupper");
    let claims_port = free_port();
    let (claims, ir, edge) = (
        claims_port.to_string(),
        free_port().to_string(),
        free_port().to_string(),
    );
    elsewhere.ok_on(
        &store,
        "west",
        &[
            "init",
            "--ingress-host",
            "127.0.0.1",
            "--claims-port",
            &claims,
            "--inter-router-port",
            &ir,
            "--edge-port",
            &edge,
        ],
    );
    let _west = here.serve_with("west", claims_port, &["--store", &store]);
    let east_port = here.init("east");
    let _east = here.serve("east", east_port);
    let token = elsewhere.file("west.yaml");
    elsewhere.ok_on(
        &store,
        "west",
        &["token", "create", token.to_str().unwrap()],
    );
    here.ok("east", &["link", "create", token.to_str().unwrap()]);
    let out = here.ok("east", &["link", "status", "link1", "--wait", "30"]);
    assert_eq!(out.stdout, "Link link1 is connected\n", "{out}");

    // The other machine sees the link west's serve holds.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = elsewhere.ok_on(&store, "west", &["-o", "json", "status"]);
        if status.json()["linked-sites"] == 1 {
            assert!(status.stderr.contains("replicas anywhere"), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(100));
    }

    elsewhere.ok_on(&store, "west", &["revoke-access"]);
    here.wait_for(
        "east",
        &["link", "status", "link1"],
        "access revoked by west",
    );
}

/// Two replicas of west (two homes, one etcd): the second one starting
/// does not clear the incoming link the first one holds as if it were left
/// by a crash; each replica's records name it as their holder.
#[test]
fn replicas_keep_each_others_incoming_links() {
    let etcd = Etcd::start();
    let (first, second, elsewhere) = (Home::new(), Home::new(), Home::new());
    let store = etcd.store_url("/skupper");
    let claims_port = free_port();
    let (claims, ir, edge) = (
        claims_port.to_string(),
        free_port().to_string(),
        free_port().to_string(),
    );
    elsewhere.ok_on(
        &store,
        "west",
        &[
            "init",
            "--ingress-host",
            "127.0.0.1",
            "--claims-port",
            &claims,
            "--inter-router-port",
            &ir,
            "--edge-port",
            &edge,
        ],
    );
    let _replica1 = first.serve_with("west", claims_port, &["--store", &store]);
    let east_port = first.init("east");
    let _east = first.serve("east", east_port);
    let token = first.file("west.yaml");
    first.ok_on(
        &store,
        "west",
        &["token", "create", token.to_str().unwrap()],
    );
    first.ok("east", &["link", "create", token.to_str().unwrap()]);
    let out = first.ok("east", &["link", "status", "link1", "--wait", "30"]);
    assert_eq!(out.stdout, "Link link1 is connected\n", "{out}");
    let linked = || {
        elsewhere
            .ok_on(&store, "west", &["-o", "json", "status"])
            .json()["linked-sites"]
            .as_u64()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while linked() != Some(1) {
        assert!(Instant::now() < deadline, "the link is not in etcd");
        std::thread::sleep(Duration::from_millis(100));
    }
    let holder = etcd.ctl(&[
        "get",
        "--prefix",
        "--print-value-only",
        "/skupper/west/incoming/",
    ]);
    let holder: serde_json::Value = serde_json::from_str(holder.trim()).unwrap();
    let holder = holder["holder"].as_str().unwrap().to_owned();
    assert!(
        holder.ends_with(&format!(":{}", first.site_dir("west").display())),
        "{holder}"
    );

    let claims2 = free_port();
    let _replica2 = second.serve_with(
        "west",
        claims2,
        &[
            "--store",
            &store,
            "--claims-listen",
            &format!("127.0.0.1:{claims2}"),
            "--inter-router-listen",
            &format!("127.0.0.1:{}", free_port()),
            "--edge-listen",
            &format!("127.0.0.1:{}", free_port()),
        ],
    );
    // The second replica clears left-over records when it starts (at its
    // first read of the site, within a poll of 250 ms); give it several.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(linked(), Some(1));
    let out = first.ok("east", &["link", "status", "link1"]);
    assert_eq!(out.stdout, "Link link1 is connected\n", "{out}");
}

/// With every etcd member stopped, serve keeps its live links (it cannot
/// renew their records, but the connections stay), and when etcd is back it
/// follows the site again: a revoke-access made elsewhere then drops the
/// link.
#[test]
fn serve_keeps_its_links_while_etcd_is_down_and_recovers() {
    let mut etcd = Etcd::start();
    let home = Home::new();
    let store = etcd.store_url("/skupper");
    let claims_port = free_port();
    let (claims, ir, edge) = (
        claims_port.to_string(),
        free_port().to_string(),
        free_port().to_string(),
    );
    home.ok_on(
        &store,
        "west",
        &[
            "init",
            "--ingress-host",
            "127.0.0.1",
            "--claims-port",
            &claims,
            "--inter-router-port",
            &ir,
            "--edge-port",
            &edge,
        ],
    );
    let mut west = home.serve_with("west", claims_port, &["--store", &store]);
    let east_port = home.init("east");
    let _east = home.serve("east", east_port);
    let token = home.file("west.yaml");
    home.ok_on(
        &store,
        "west",
        &["token", "create", token.to_str().unwrap()],
    );
    home.ok("east", &["link", "create", token.to_str().unwrap()]);
    let out = home.ok("east", &["link", "status", "link1", "--wait", "30"]);
    assert_eq!(out.stdout, "Link link1 is connected\n", "{out}");

    etcd.stop();
    // Several of west's polls and store retries fail meanwhile.
    std::thread::sleep(Duration::from_secs(8));
    assert!(!west.exited(), "serve exited while etcd was down");
    let out = home.ok("east", &["link", "status", "link1"]);
    assert_eq!(out.stdout, "Link link1 is connected\n", "{out}");

    etcd.resume();
    // From another machine (no control socket to west's serve): west sees
    // it through etcd again.
    Home::new().ok_on(&store, "west", &["revoke-access"]);
    home.wait_for(
        "east",
        &["link", "status", "link1"],
        "access revoked by west",
    );
}
