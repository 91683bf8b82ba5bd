//! The `skupper-token` binary with `--store etcd://...` (or
//! `SKUPPER_TOKEN_STORE`): the site lives in a real etcd started by the
//! test, nothing of it in files under `--home`.
// The CLI is where the OS is allowed in: its tests use files, threads,
// clocks and processes.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::etcd::Etcd;
use common::{free_port, Home, Out};

/// The etcd keys under `prefix`.
fn keys(etcd: &Etcd, prefix: &str) -> Vec<String> {
    etcd.ctl(&["get", "--prefix", "--keys-only", prefix])
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn init_tokens_status_and_revoke_access_on_etcd() {
    let etcd = Etcd::start();
    let home = Home::new();
    let store = etcd.store_url("/skupper");
    let claims = free_port().to_string();
    let (ir, edge) = (free_port().to_string(), free_port().to_string());
    let init = [
        "init",
        "--ingress-host",
        "127.0.0.1",
        "--claims-port",
        &claims,
        "--inter-router-port",
        &ir,
        "--edge-port",
        &edge,
    ];
    let out = home.ok_on(&store, "west", &init);
    assert!(out.stdout.contains("Site \"west\" created"), "{out}");
    // The site is in etcd under PREFIX/NAMESPACE, not in files.
    assert_eq!(keys(&etcd, "/skupper/"), ["/skupper/west/site/site"]);
    assert!(!home.site_dir("west").join("site").exists());
    // Without --store the same namespace has no site (in files).
    let out = home.run("west", &["status"]);
    assert_eq!(out.code, 3, "{out}");

    // SKUPPER_TOKEN_STORE selects the store too.
    let token = home.file("west.yaml");
    let output = home
        .cmd("west")
        .env("SKUPPER_TOKEN_STORE", &store)
        .args(["token", "create", token.to_str().unwrap(), "--uses", "2"])
        .output()
        .unwrap();
    let out = Out::from(output, "west", &["token", "create"]);
    assert_eq!(out.code, 0, "{out}");
    let status = home
        .ok_on(&store, "west", &["-o", "json", "token", "status"])
        .json();
    let claims_listed = status["claims"].as_array().unwrap();
    assert_eq!(claims_listed.len(), 1, "{status}");
    let claim = claims_listed[0]["name"].as_str().unwrap().to_owned();
    assert!(
        keys(&etcd, "/skupper/west/claim/").contains(&format!("/skupper/west/claim/{claim}")),
        "{:?}",
        keys(&etcd, "/skupper/")
    );

    let status = home.ok_on(&store, "west", &["-o", "json", "status"]).json();
    assert_eq!(status["name"], "west", "{status}");
    assert_eq!(status["namespace"], "west", "{status}");
    assert_eq!(status["ca-generation"], 1, "{status}");
    assert_eq!(status["claims"], format!("127.0.0.1:{claims}"), "{status}");
    let id = status["id"].as_str().unwrap().to_owned();

    // A 2.x grant, and a link from another site in the same etcd (its own
    // prefix) made from a cert token of this one.
    let grant = home.file("grant.yaml");
    home.ok_on(
        &store,
        "west",
        &["token", "issue", grant.to_str().unwrap(), "--name", "g1"],
    );
    assert_eq!(keys(&etcd, "/skupper/west/grant/").len(), 1);
    let cert = home.file("cert.yaml");
    home.ok_on(
        &store,
        "west",
        &["token", "create", cert.to_str().unwrap(), "-t", "cert"],
    );
    let east_init: Vec<&str> = init
        .iter()
        .map(|a| if *a == claims.as_str() { "1" } else { a })
        .collect();
    home.ok_on(&store, "east", &east_init);
    home.ok_on(
        &store,
        "east",
        &[
            "link",
            "create",
            cert.to_str().unwrap(),
            "--name",
            "to-west",
        ],
    );
    assert_eq!(
        keys(&etcd, "/skupper/east/link/"),
        ["/skupper/east/link/to-west"]
    );
    let links = home
        .ok_on(&store, "east", &["-o", "json", "link", "status"])
        .json();
    assert_eq!(links["outgoing"][0]["name"], "to-west", "{links}");

    let out = home.ok_on(&store, "west", &["revoke-access"]);
    assert!(out.stdout.contains("generation 2"), "{out}");
    assert!(out.stdout.contains("1 claim token(s)"), "{out}");
    let status = home.ok_on(&store, "west", &["-o", "json", "status"]).json();
    assert_eq!(status["ca-generation"], 2, "{status}");
    let tokens = home
        .ok_on(&store, "west", &["-o", "json", "token", "status"])
        .json();
    assert_eq!(tokens["claims"].as_array().unwrap().len(), 0, "{tokens}");

    // A damaged record is named with its etcd key, and how to remove it.
    etcd.ctl(&["put", "/skupper/west/issued/800A", "not json"]);
    let out = home.run_on(&store, "west", &["token", "status"]);
    assert_eq!(out.code, 5, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "etcd key /skupper/west/issued/800A at {}",
            etcd.client_url()
        )),
        "{out}"
    );
    assert!(
        out.stderr.contains(&format!(
            "remove it with 'ETCDCTL_API=3 etcdctl --endpoints {} del /skupper/west/issued/800A'",
            etcd.client_url()
        )),
        "{out}"
    );
    etcd.ctl(&["del", "/skupper/west/issued/800A"]);

    // init refuses to replace the site, --force replaces it.
    let out = home.run_on(&store, "west", &init);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("a site already exists"), "{out}");
    let mut forced = init.to_vec();
    forced.push("--force");
    home.ok_on(&store, "west", &forced);
    let status = home.ok_on(&store, "west", &["-o", "json", "status"]).json();
    assert_ne!(status["id"], id.as_str(), "{status}");
    assert_eq!(keys(&etcd, "/skupper/west/"), ["/skupper/west/site/site"]);
}

/// An etcd that cannot be reached is a storage failure (exit 5) naming
/// the endpoint; a password in the URL is never printed.
#[test]
fn unreachable_etcd_is_a_storage_failure_without_the_password() {
    let port = free_port();
    let home = Home::new();
    let store = format!("etcd://alice:hunter2@127.0.0.1:{port}/skupper");
    let out = home.run_on(&store, "west", &["status"]);
    assert_eq!(out.code, 5, "{out}");
    assert!(
        out.stderr.contains(&format!("http://127.0.0.1:{port}")),
        "{out}"
    );
    assert!(!out.stderr.contains("hunter2"), "{out}");
    assert!(!out.stdout.contains("hunter2"), "{out}");

    let out = home.run_on("etcd://bob:hunter2@127.0.0.1:0", "west", &["status"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("invalid port"), "{out}");
    assert!(!out.stderr.contains("hunter2"), "{out}");
}
