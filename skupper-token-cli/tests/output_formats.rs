//! `-o json` and `-o yaml` for every command that prints data, with real
//! `serve` processes: each prints one object with the keys documented in
//! `src/cli/schema.rs`, and a failure prints an object too (with an `error`
//! key and the failure's exit code) while the message goes to stderr.

// Tests start processes, use the clock and bind sockets.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::{Home, Out};
use serde_json::Value;

/// The keys of an object, sorted.
fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

fn sorted(keys: &[&str]) -> Vec<String> {
    let mut keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    keys.sort();
    keys
}

const SITE: &[&str] = &[
    "id",
    "name",
    "namespace",
    "mode",
    "version",
    "claims",
    "inter-router",
    "edge",
    "ca-generation",
    "created",
];

const OUTGOING: &[&str] = &[
    "name",
    "connected",
    "will-connect",
    "status",
    "reason",
    "state",
    "remote-site-id",
    "remote-site-name",
    "target",
    "cost",
    "since",
];

const INCOMING: &[&str] = &[
    "remote-site-id",
    "remote-site-name",
    "link",
    "since",
    "common-name",
];

const CERTIFICATE: &[&str] = &[
    "subject",
    "issuer",
    "serial",
    "key",
    "signature",
    "not-before",
    "not-after",
    "fingerprint-sha256",
];

/// Runs a command with `-o json` and with `-o yaml` (it must change
/// nothing), checks both parse to the same object, and returns it.
fn both(home: &Home, ns: &str, args: &[&str]) -> Value {
    let run = |format: &str| -> Out {
        let mut all = vec!["-o", format];
        all.extend_from_slice(args);
        home.ok(ns, &all)
    };
    let json = run("json").json();
    let yaml = run("yaml").yaml();
    assert_eq!(json, yaml, "the same object in JSON and in YAML");
    json
}

fn json(home: &Home, ns: &str, args: &[&str]) -> Value {
    let mut all = vec!["-o", "json"];
    all.extend_from_slice(args);
    home.ok(ns, &all).json()
}

/// `init` on free ports with `-o FORMAT`: the claims port and the object.
fn init(home: &Home, ns: &str, format: &str) -> (u16, Value) {
    let ports = [(); 3].map(|()| common::free_port().to_string());
    let out = home.ok(
        ns,
        &[
            "-o",
            format,
            "init",
            "--ingress-host",
            "127.0.0.1",
            "--claims-port",
            &ports[0],
            "--inter-router-port",
            &ports[1],
            "--edge-port",
            &ports[2],
        ],
    );
    let value = if format == "json" {
        out.json()
    } else {
        out.yaml()
    };
    (ports[0].parse().unwrap(), value)
}

#[test]
fn every_command_prints_its_documented_object() {
    let home = Home::new();
    let (west_port, west_site) = init(&home, "west", "json");
    assert_eq!(keys(&west_site), sorted(SITE));
    let (east_port, east_site) = init(&home, "east", "yaml");
    assert_eq!(keys(&east_site), sorted(SITE));
    assert_eq!(east_site["namespace"], "east");
    let (west_id, east_id) = (
        west_site["id"].as_str().unwrap().to_owned(),
        east_site["id"].as_str().unwrap().to_owned(),
    );
    let _west = home.serve("west", west_port);
    let _east = home.serve("east", east_port);

    // token create: the token's description, never its password.
    let file = home.file("secret.yaml");
    let created = json(
        &home,
        "west",
        &["token", "create", file.to_str().unwrap(), "--uses", "2"],
    );
    assert_eq!(
        keys(&created),
        sorted(&[
            "type",
            "name",
            "file",
            "issuing-site",
            "url",
            "expires",
            "uses"
        ])
    );
    assert_eq!(created["type"], "claim");
    assert_eq!(created["uses"], 2);
    assert_eq!(created["issuing-site"], west_id.as_str());
    assert_eq!(created["file"], file.to_str().unwrap());
    let cert_file = home.file("cert.yaml");
    let cert = {
        let out = home.ok(
            "west",
            &[
                "-o",
                "yaml",
                "token",
                "create",
                cert_file.to_str().unwrap(),
                "-t",
                "cert",
            ],
        );
        out.yaml()
    };
    assert_eq!(cert["type"], "cert");
    assert_eq!(cert["url"], Value::Null);
    // Standard output carries the token itself: no object can go there.
    let out = home.run("west", &["-o", "json", "token", "create", "-"]);
    assert_eq!(out.code, 2, "{out}");
    assert_eq!(out.json()["error"]["exit-code"], 2);

    // token status and token inspect.
    let status = both(&home, "west", &["token", "status"]);
    assert_eq!(keys(&status), sorted(&["claims", "grants", "certificates"]));
    assert_eq!(
        keys(&status["claims"][0]),
        sorted(&[
            "name",
            "expires",
            "uses-remaining",
            "uses-allowed",
            "claims-made",
            "failed-attempts",
            "last-failed-attempt",
            "state",
            "created"
        ])
    );
    assert_eq!(
        keys(&status["certificates"][0]),
        sorted(&[
            "via",
            "token",
            "issued-to",
            "serial",
            "issued",
            "expires",
            "state"
        ])
    );
    let inspect = both(
        &home,
        "west",
        &["token", "inspect", cert_file.to_str().unwrap()],
    );
    assert_eq!(
        keys(&inspect),
        sorted(&[
            "type",
            "name",
            "issuing-site",
            "site-version",
            "ca",
            "url",
            "expires",
            "inter-router",
            "edge",
            "certificate"
        ])
    );
    assert_eq!(keys(&inspect["ca"]), sorted(CERTIFICATE));
    assert_eq!(keys(&inspect["certificate"]), sorted(CERTIFICATE));

    // link create, then link status with --wait.
    let link = json(&home, "east", &["link", "create", file.to_str().unwrap()]);
    assert_eq!(
        keys(&link),
        sorted(&[
            "name",
            "remote-site-id",
            "target",
            "cost",
            "state",
            "replaced"
        ])
    );
    assert_eq!(link["remote-site-id"], west_id.as_str());
    assert_eq!(link["state"], "connecting");
    let waited = json(&home, "east", &["link", "status", "link1", "--wait", "30"]);
    let mut one = OUTGOING.to_vec();
    one.extend(["site-running", "wait"]);
    assert_eq!(keys(&waited), sorted(&one));
    assert_eq!(
        keys(&waited["wait"]),
        sorted(&["seconds", "waited-seconds", "outcome"])
    );
    assert_eq!(waited["wait"]["outcome"], "connected");
    assert_eq!(waited["connected"], true);

    // Both directions name the remote site by id and by name.
    let east_links = both(&home, "east", &["link", "status"]);
    assert_eq!(
        keys(&east_links),
        sorted(&["site-running", "outgoing", "incoming", "unreadable", "wait"])
    );
    assert_eq!(east_links["wait"], Value::Null);
    assert_eq!(east_links["unreadable"], Value::Array(Vec::new()));
    let out = &east_links["outgoing"][0];
    assert_eq!(keys(out), sorted(OUTGOING));
    assert_eq!(out["remote-site-id"], west_id.as_str());
    assert_eq!(out["remote-site-name"], "west");
    let west_links = json(&home, "west", &["link", "status"]);
    let inc = &west_links["incoming"][0];
    assert_eq!(keys(inc), sorted(INCOMING));
    assert_eq!(inc["remote-site-id"], east_id.as_str());
    assert_eq!(inc["remote-site-name"], "east");

    // link ping: which link, both ways, and the round trips.
    let ping_keys = sorted(&[
        "direction",
        "link",
        "remote-site-id",
        "remote-site-name",
        "rtt-us",
    ]);
    let ping = json(&home, "east", &["link", "ping", "link1", "-c", "2"]);
    assert_eq!(keys(&ping), ping_keys);
    assert_eq!(ping["direction"], "outgoing");
    assert_eq!(ping["link"], "link1");
    assert_eq!(ping["remote-site-name"], "west");
    assert_eq!(ping["rtt-us"].as_array().unwrap().len(), 2);
    let ping = home
        .ok("west", &["-o", "yaml", "link", "ping", "--site", "east"])
        .yaml();
    assert_eq!(keys(&ping), ping_keys);
    assert_eq!(ping["direction"], "incoming");
    assert_eq!(ping["remote-site-id"], east_id.as_str());
    assert_eq!(ping["link"], "link1");

    // status.
    let status = json(&home, "west", &["status"]);
    let mut status_keys = SITE.to_vec();
    status_keys.extend(["linked-sites", "site-running"]);
    assert_eq!(keys(&status), sorted(&status_keys));
    assert_eq!(status["linked-sites"], 1);
    assert_eq!(status["site-running"], true);

    // revoke-access --site, then a wait that cannot succeed: the wait's
    // object, with the error, on stdout; the message on stderr; exit 1.
    let revoked = json(&home, "west", &["revoke-access", "--site", &east_id]);
    assert_eq!(keys(&revoked), sorted(&["scope", "site", "certificates"]));
    assert_eq!(revoked["scope"], "site");
    assert_eq!(
        keys(&revoked["certificates"][0]),
        sorted(&["serial", "common-name"])
    );
    home.wait_for(
        "east",
        &["link", "status", "link1"],
        "access revoked by west",
    );
    for format in ["json", "yaml"] {
        let out = home.run(
            "east",
            &["-o", format, "link", "status", "link1", "--wait", "30"],
        );
        assert_eq!(out.code, 1, "{out}");
        let failed = if format == "json" {
            out.json()
        } else {
            out.yaml()
        };
        let mut failed_keys = one.clone();
        failed_keys.push("error");
        assert_eq!(keys(&failed), sorted(&failed_keys), "{out}");
        assert_eq!(failed["wait"]["outcome"], "will-not-connect");
        assert_eq!(failed["will-connect"], false);
        assert_eq!(failed["state"], "revoked");
        assert_eq!(
            keys(&failed["error"]),
            sorted(&["message", "hint", "exit-code"])
        );
        assert_eq!(failed["error"]["exit-code"], 1);
        let message = failed["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("Link link1 will not connect: access revoked by west"),
            "{out}"
        );
        assert!(
            out.stderr.starts_with(&format!("error: {message}")),
            "{out}"
        );
    }

    // Each revoke-access makes a new CA: once in each format.
    let revoked = json(&home, "west", &["revoke-access"]);
    let again = home.ok("west", &["-o", "yaml", "revoke-access"]).yaml();
    for r in [&revoked, &again] {
        assert_eq!(
            keys(r),
            sorted(&[
                "scope",
                "ca-generation",
                "claims-deleted",
                "claims-voided",
                "grants-deleted",
                "grants-voided",
                "incoming-dropped"
            ])
        );
        assert_eq!(r["scope"], "all");
    }
    assert_eq!(revoked["claims-deleted"], 1, "the claim made above");
    assert_eq!(again["ca-generation"], 3);

    // link delete.
    let deleted = json(&home, "east", &["link", "delete", "link1"]);
    assert_eq!(keys(&deleted), sorted(&["removed", "remote-site-id"]));
    assert_eq!(deleted["removed"], "link1");

    // Any other failure: an object with the error alone.
    let out = home.run("nowhere", &["-o", "json", "status"]);
    assert_eq!(out.code, 3, "{out}");
    let failed = out.json();
    assert_eq!(keys(&failed), sorted(&["error"]));
    assert_eq!(failed["error"]["exit-code"], 3);
    assert!(
        failed["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("skupper-token -n nowhere init"),
        "{out}"
    );
    let out = home.run("east", &["-o", "yaml", "link", "delete", "link1"]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(out.yaml()["error"]["message"], "No such link \"link1\"");
}
