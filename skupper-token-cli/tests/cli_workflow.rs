//! The documented workflow with real `skupper-token` processes on loopback:
//! sites in temporary homes, a real `serve` daemon, HTTPS claim redemption.

// Tests start processes, use the clock and bind sockets.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
// A skipped interop check says so on stderr.
#![allow(clippy::print_stderr)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;

use common::{free_port, Home, Out};

#[test]
fn claim_token_with_two_uses_links_twice_then_is_refused() {
    let home = Home::new();
    let port = home.init("west");
    for ns in ["east", "north", "south"] {
        home.init(ns);
    }
    let daemon = home.serve("west", port);
    let token = home.token("west", "secret.yaml", &["--expiry", "30m0s", "--uses", "2"]);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&token).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "token files are private");
    let t = token.to_str().unwrap();

    for ns in ["east", "north"] {
        let out = home.ok(ns, &["link", "create", t]);
        assert!(
            out.stdout
                .starts_with("Site configured to link to https://127.0.0.1:"),
            "{out}"
        );
        assert!(out.stdout.contains("(name=link1)"), "{out}");
    }
    let refused = home.run("south", &["link", "create", t]);
    assert_ne!(refused.code, 0, "{refused}");
    assert!(
        refused
            .stderr
            .contains("Failed to redeem claim: No such claim: no uses left (2 uses allowed)"),
        "{refused}"
    );
    assert!(
        home.links_of("south")
            .contains("There are no links configured"),
        "a refused link leaves nothing behind"
    );
    let fresh = home.token("west", "fresh.yaml", &[]);
    let out = home.ok("south", &["link", "create", fresh.to_str().unwrap()]);
    assert!(out.stdout.contains("(name=link1)"), "{out}");

    let status = home.ok("west", &["token", "status"]).stdout;
    assert!(status.contains("0/2"), "{status}");
    assert!(status.contains("used up"), "{status}");

    let (_, log) = daemon.stop();
    assert!(log.contains("200"), "serve logs each redemption: {log}");
    let password = std::fs::read_to_string(&token).unwrap();
    let encoded = password
        .lines()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .expect("password line");
    assert!(!log.contains(encoded), "the log never shows the password");
}

#[test]
fn expired_wrong_password_and_revoked_claims_are_refused_with_the_reason() {
    let home = Home::new();
    let port = home.init("west");
    home.init("east");
    let _daemon = home.serve("west", port);

    let short = home.token("west", "short.yaml", &["--expiry", "2s"]);
    std::thread::sleep(Duration::from_millis(2500));
    let out = home.run("east", &["link", "create", short.to_str().unwrap()]);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stderr
            .contains("Failed to redeem claim: No such claim: expired at"),
        "{out}"
    );

    let good = home.token("west", "good.yaml", &[]);
    let forged_path = with_wrong_password(&home, &good, "forged.yaml");
    let out = home.run("east", &["link", "create", forged_path.to_str().unwrap()]);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stderr.contains("Failed to redeem claim: Claim refused"),
        "{out}"
    );

    home.ok("west", &["revoke-access"]);
    let out = home.run("east", &["link", "create", good.to_str().unwrap()]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("Failed to redeem claim"), "{out}");
    assert!(home
        .links_of("east")
        .contains("There are no links configured"));
}

/// A token file with its password replaced.
fn forged(home: &Home, token: &Path, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(token).unwrap();
    let forged: String = text
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
    let path = home.file(name);
    std::fs::write(&path, forged).unwrap();
    path
}

/// `token status` lists tokens oldest first, with the certificates issued
/// (cert tokens and redeemed claims) and the refused attempts per claim,
/// which `serve` (another process) recorded; `revoke-access` counts only
/// the claims that could still have been used.
#[test]
fn token_status_shows_tokens_oldest_first_with_certificates_and_failed_attempts() {
    let home = Home::new();
    let port = home.init("west");
    home.init("east");
    home.init("north");
    let _daemon = home.serve("west", port);
    let zzz = home.token("west", "zzz.yaml", &["--name", "zzz"]);
    home.token("west", "cert.yaml", &["--name", "mycert", "-t", "cert"]);
    home.token("west", "aaa.yaml", &["--name", "aaa"]);

    // A wrong password: 403, final (one POST).
    let wrong = forged(&home, &zzz, "wrong.yaml");
    let out = home.run("east", &["link", "create", wrong.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out}");
    home.ok("east", &["link", "create", zzz.to_str().unwrap()]);
    // Used up: 404, not retried.
    let out = home.run("north", &["link", "create", zzz.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out}");
    let (east, north) = (home.site_id("east"), home.site_id("north"));

    let status = home.ok("west", &["token", "status"]).stdout;
    let lines: Vec<&str> = status.lines().collect();
    assert_eq!(lines[0], "Claim tokens:", "{status}");
    assert!(lines[1].starts_with("NAME "), "{status}");
    assert!(lines[1].contains(" FAILED ATTEMPTS "), "{status}");
    let cells = |line: &str| {
        line.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let zzz_row = cells(lines[2]);
    assert_eq!(zzz_row[0], "zzz", "oldest first: {status}");
    assert_eq!(zzz_row[4..], ["0/1", "1", "2", "used", "up"], "{status}");
    let aaa_row = cells(lines[3]);
    assert_eq!(aaa_row[0], "aaa", "{status}");
    assert_eq!(aaa_row[4..], ["1/1", "0", "0", "active"], "{status}");
    assert_eq!(lines[4], "Failed redemption attempts:", "{status}");
    assert!(
        lines[5].starts_with("  zzz: 2 failed attempt(s); the last at ")
            && lines[5].ends_with(&format!(" from site {north:?}: no uses left")),
        "{status}"
    );
    assert_eq!(
        lines[6], "Certificates issued (cert tokens and redeemed claims):",
        "{status}"
    );
    assert!(lines[7].starts_with("TOKEN "), "{status}");
    let cert_row = cells(lines[8]);
    assert_eq!(
        cert_row[..4],
        ["cert", "token", "mycert", "mycert"],
        "{status}"
    );
    assert_eq!(
        cert_row.last().map(String::as_str),
        Some("valid"),
        "{status}"
    );
    let claim_row = cells(lines[9]);
    assert_eq!(claim_row[..3], ["claim", "zzz", east.as_str()], "{status}");
    assert_eq!(lines.len(), 10, "{status}");

    let json = home.ok("west", &["-o", "json", "token", "status"]).stdout;
    let json: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let names: Vec<&str> = json["claims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["zzz", "aaa"], "oldest first: {json:#}");
    let zzz = &json["claims"][0];
    assert_eq!(zzz["uses-remaining"], 0);
    assert_eq!(zzz["claims-made"], 1);
    assert_eq!(zzz["failed-attempts"], 2);
    assert_eq!(zzz["last-failed-attempt"]["reason"], "no uses left");
    let certs = &json["certificates"];
    assert_eq!(certs[0]["via"], "cert-token");
    assert_eq!(certs[0]["token"], "mycert");
    assert_eq!(certs[0]["issued-to"], "mycert");
    assert_eq!(certs[0]["state"], "valid");
    assert_eq!(certs[1]["via"], "claim");
    assert_eq!(certs[1]["token"], "zzz");
    assert_eq!(certs[1]["issued-to"], east.as_str());

    // zzz is used up: only aaa could still have been used.
    let out = home.ok("west", &["revoke-access"]);
    assert_eq!(
        out.stdout.trim(),
        "Access to site \"west\" revoked: new CA (generation 2); 1 claim token(s) that could still have been used voided; every incoming link must be recreated with a new token."
    );
    let status = home.ok("west", &["token", "status"]).stdout;
    assert_eq!(
        status,
        "No outstanding claim tokens.\nNo certificates issued by the current CA.\n"
    );
}

#[test]
fn cert_token_is_reused_by_two_sites() {
    let home = Home::new();
    home.init("west");
    home.init("east");
    home.init("north");
    let out = home.ok(
        "west",
        &[
            "token",
            "create",
            home.file("cert.yaml").to_str().unwrap(),
            "-t",
            "cert",
        ],
    );
    assert!(
        out.stdout.starts_with("Connection token written to "),
        "{out}"
    );
    for ns in ["east", "north"] {
        let out = home.ok(
            ns,
            &["link", "create", home.file("cert.yaml").to_str().unwrap()],
        );
        assert!(
            out.stdout.contains("Site configured to link to 127.0.0.1:"),
            "{out}"
        );
        let status = home.ok(ns, &["link", "status", "link1"]).stdout;
        assert!(status.starts_with("Link link1 not connected ("), "{status}");
    }
}

#[test]
fn bad_link_requests_are_refused_before_anything_is_stored() {
    let home = Home::new();
    home.init("west");
    home.init("east");
    let own = home.token("east", "own.yaml", &[]);
    let out = home.run("east", &["link", "create", own.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr
            .contains("Can't create connection to self with token"),
        "{out}"
    );

    let cert = home.file("cert.yaml");
    home.ok(
        "west",
        &["token", "create", cert.to_str().unwrap(), "-t", "cert"],
    );
    home.ok("east", &["link", "create", cert.to_str().unwrap()]);
    let claim = home.token("west", "claim.yaml", &[]);
    let out = home.run("east", &["link", "create", claim.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("Already connected to \""), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "'skupper-token -n east link create {} --replace'",
            claim.display()
        )),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("'skupper-token -n east link delete link1'"),
        "{out}"
    );

    let text = std::fs::read(&claim).unwrap();
    let truncated = home.file("truncated.yaml");
    std::fs::write(&truncated, &text[..text.len() / 2]).unwrap();
    let out = home.run("east", &["link", "create", truncated.to_str().unwrap()]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("is not a usable token"), "{out}");

    let not_yaml = home.file("not-yaml.yaml");
    std::fs::write(&not_yaml, b"\x00\x01 this is {{{ not yaml").unwrap();
    let out = home.run("east", &["link", "create", not_yaml.to_str().unwrap()]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("is not a usable token"), "{out}");

    let links = home.links_of("east");
    assert_eq!(
        links.matches("Link link").count(),
        1,
        "only the first link: {links}"
    );
    let claims = home.ok("west", &["token", "status"]).stdout;
    assert!(claims.contains("1/1"), "no use was spent: {claims}");

    let out = home.run("nowhere", &["status"]);
    assert_eq!(out.code, 3, "{out}");
    assert!(out.stderr.contains("init"), "{out}");
}

#[test]
fn status_link_delete_and_inspect() {
    let home = Home::new();
    home.init("west");
    let out = home.ok("west", &["status"]);
    assert_eq!(
        out.stdout.trim(),
        "Skupper is enabled for namespace \"west\" in interior mode. It is not linked to any other sites."
    );
    let out = home.run("west", &["link", "delete", "link1"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("No such link \"link1\""), "{out}");
    let out = home.run("west", &["revoke-access", "--site", "nobody"]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        out.stderr,
        "error: no certificate issued by this site's current CA names \"nobody\", and no live incoming link comes from a site with that id or name\n\
         Give a site id, a site name or a cert token name; 'skupper-token -n west link status' lists the sites linked to this one.\n"
    );

    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../skupper-token/tests/data/skupper-1.5.2-claim-token.yaml"
    );
    let out = home.ok("west", &["token", "inspect", fixture]);
    assert!(out.stdout.contains("claim token"), "{out}");
    assert!(out.stdout.contains("RSA 2048"), "{out}");
    assert!(out.stdout.contains("CA fingerprint: SHA256 "), "{out}");
    assert!(!out.stdout.contains("password: "), "{out}");
    let out = home.ok("west", &["-o", "json", "token", "inspect", fixture]);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(json["type"], "claim");

    // A Skupper 2.x Link file (from Skupper's `link generate`) makes a
    // link like a cert token.
    let v2 = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../skupper-token/tests/data/v2/v2-link-generate.yaml"
    );
    let out = home.ok("west", &["link", "create", v2]);
    assert_eq!(
        out.stdout,
        "Site configured to link to 127.0.0.1:21462 (name=link1)\nCheck the status of the link using 'skupper-token link status'.\n"
    );
}

#[test]
fn concurrent_link_create_against_a_three_use_claim() {
    let home = Home::new();
    let port = home.init("west");
    let sites: Vec<String> = (0..8).map(|i| format!("site{i}")).collect();
    for ns in &sites {
        home.init(ns);
    }
    let _daemon = home.serve("west", port);
    let token = home.token("west", "three.yaml", &["--uses", "3"]);
    let children: Vec<(String, Child)> = sites
        .iter()
        .map(|ns| {
            let child = home
                .cmd(ns)
                .args(["link", "create", token.to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            (ns.clone(), child)
        })
        .collect();
    let mut ok = 0;
    for (ns, child) in children {
        let out = Out::from(child.wait_with_output().unwrap(), &ns, &["link", "create"]);
        if out.code == 0 {
            ok += 1;
        } else {
            assert!(out.stderr.contains("no uses left"), "{out}");
        }
    }
    assert_eq!(ok, 3, "exactly the claim's uses succeed");
}

/// A real HTTP client this project did not write redeems a claim from a
/// running `serve`.
#[test]
fn curl_redeems_a_claim_from_serve() {
    if Command::new("curl").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("SKUPPER_TOKEN_REQUIRE_TOOLS").is_none(),
            "curl is missing but SKUPPER_TOKEN_REQUIRE_TOOLS is set"
        );
        eprintln!("note: curl not found; skipping");
        return;
    }
    let home = Home::new();
    let port = home.init("west");
    let _daemon = home.serve("west", port);
    let token = home.ok("west", &["token", "create", "-", "--uses", "1"]);
    assert!(
        token.stderr.contains("Token written to standard output"),
        "{token}"
    );
    let yaml = token.stdout;
    let field = |key: &str| -> String {
        yaml.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(key)
                    .map(|v| v.trim().trim_matches('"').to_owned())
            })
            .unwrap_or_else(|| panic!("no {key} in {yaml}"))
    };
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let ca = b64.decode(field("ca.crt:")).unwrap();
    let password = b64.decode(field("password:")).unwrap();
    let url = field("skupper.io/url:");
    std::fs::write(home.file("ca.crt"), ca).unwrap();
    std::fs::write(home.file("pw"), password).unwrap();
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--fail-with-body", "--cacert"])
        .arg(home.file("ca.crt"))
        .args(["-X", "POST", "--data-binary"])
        .arg(format!("@{}", home.file("pw").display()))
        .arg(format!("{url}?site-version=1.9.6"))
        .args(["-H", "skupper-site-name: curl-site"])
        .output()
        .expect("curl");
    let body = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "curl failed: {body} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(body.contains("skupper.io/type: connection-token"), "{body}");
    std::fs::write(home.file("redeemed.yaml"), body.as_bytes()).unwrap();
    let inspect = home.ok(
        "west",
        &[
            "token",
            "inspect",
            home.file("redeemed.yaml").to_str().unwrap(),
        ],
    );
    assert!(inspect.stdout.contains("CN=curl-site"), "{inspect}");
    let again = Command::new("curl")
        .args(["--silent", "--cacert"])
        .arg(home.file("ca.crt"))
        .args(["-X", "POST", "--data-binary"])
        .arg(format!("@{}", home.file("pw").display()))
        .arg(format!("{url}?site-version=1.9.6"))
        .args(["-H", "skupper-site-name: curl-site", "-w", "%{http_code}"])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(
        text.ends_with("404"),
        "a one-use claim answers 404 the second time: {text}"
    );
    assert!(text.contains("no uses left"), "{text}");
}

#[test]
fn init_refuses_to_replace_a_site_unless_forced() {
    let home = Home::new();
    home.init("west");
    let first = home.ok("west", &["-o", "json", "status"]).stdout;
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    let out = home.run("west", &["init"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("a site already exists"), "{out}");
    assert!(out.stderr.contains("--force"), "{out}");
    home.ok("west", &["init", "--force", "--mode", "edge"]);
    let second = home.ok("west", &["-o", "json", "status"]).stdout;
    let second: serde_json::Value = serde_json::from_str(&second).unwrap();
    assert_ne!(first["id"], second["id"], "a new site");
    assert_eq!(second["mode"], "edge");
    let out = home.run(
        "west",
        &["token", "create", home.file("t.yaml").to_str().unwrap()],
    );
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr
            .contains("Edge configuration cannot accept connections"),
        "{out}"
    );
    assert!(!home.file("t.yaml").exists(), "nothing written");
    let leftovers: Vec<_> = std::fs::read_dir(home.path().join("sites"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers, ["west"], "no staging directories left");
}

/// `revoke-access --site east` by the site's name, from the CLI while
/// `serve` runs: the running site's incoming links are in the site's
/// records, so the command finds east there; east is cut off and told why,
/// north stays linked.
#[test]
fn revoke_access_for_one_site_by_name_while_serve_runs() {
    let home = Home::new();
    let west_port = home.init("west");
    let east_port = home.init("east");
    let north_port = home.init("north");
    let _west = home.serve("west", west_port);
    let _east = home.serve("east", east_port);
    let _north = home.serve("north", north_port);
    for ns in ["east", "north"] {
        let token = home.token("west", &format!("{ns}.yaml"), &[]);
        home.ok(ns, &["link", "create", token.to_str().unwrap()]);
        home.ok(ns, &["link", "status", "link1", "--wait", "20"]);
    }
    home.wait_for("west", &["status"], "It is linked to 2 other sites.");

    let out = home.ok("west", &["revoke-access", "--site", "east"]);
    assert_eq!(
        out.stdout.trim(),
        "Access for \"east\" revoked: 1 certificate(s) no longer accepted; other sites stay linked.",
        "{out}"
    );
    home.wait_for("west", &["status"], "It is linked to 1 other site.");
    let east = home.wait_for(
        "east",
        &["link", "status", "link1"],
        "access revoked by west",
    );
    assert!(
        east.starts_with("Link link1 not connected (access revoked by west"),
        "{east}"
    );
    assert_eq!(
        home.ok("north", &["link", "status", "link1"]).stdout.trim(),
        "Link link1 is connected"
    );
    let out = home.run("west", &["revoke-access", "--site", "nobody"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("names \"nobody\""), "{out}");
}

/// The user documentation with live links between running sites: west
/// links to north, east links to west, west is linked to 2 other sites,
/// pings both ways, revoke-access drops east (told why) and keeps north,
/// Already connected until the stale link is replaced; kill -9 and restart
/// of west: links come back by themselves.
#[test]
fn live_links_status_revoke_and_restart() {
    let home = Home::new();
    let west_port = home.init("west");
    let east_port = home.init("east");
    let north_port = home.init("north");
    let mut west = home.serve("west", west_port);
    let _east = home.serve("east", east_port);
    let _north = home.serve("north", north_port);

    let to_north = home.token("north", "north.yaml", &[]);
    home.ok("west", &["link", "create", to_north.to_str().unwrap()]);
    let to_west = home.token("west", "west.yaml", &[]);
    home.ok("east", &["link", "create", to_west.to_str().unwrap()]);
    home.ok("east", &["link", "status", "link1", "--wait", "20"]);
    home.ok("west", &["link", "status", "link1", "--wait", "20"]);
    home.wait_for("west", &["status"], "It is linked to 2 other sites.");
    let ping = home.ok("east", &["link", "ping", "link1"]);
    assert!(ping.stdout.starts_with("Reply over link link1"), "{ping}");
    let ping = home.ok("west", &["link", "ping", "--site", "east"]);
    assert!(
        ping.stdout.starts_with("Reply over the incoming link"),
        "{ping}"
    );

    home.ok("west", &["revoke-access"]);
    home.wait_for("west", &["status"], "It is linked to 1 other site.");
    assert_eq!(
        home.ok("west", &["link", "status", "link1"]).stdout.trim(),
        "Link link1 is connected",
        "outgoing links stay connected"
    );
    let east = home.wait_for(
        "east",
        &["link", "status", "link1"],
        "access revoked by west",
    );
    assert!(
        east.starts_with("Link link1 not connected (access revoked by west"),
        "{east}"
    );

    let again = home.token("west", "again.yaml", &[]);
    let out = home.run("east", &["link", "create", again.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("Already connected to \""), "{out}");
    home.ok(
        "east",
        &["link", "create", again.to_str().unwrap(), "--replace"],
    );
    home.ok("east", &["link", "status", "link1", "--wait", "20"]);
    home.wait_for("west", &["status"], "It is linked to 2 other sites.");

    // kill -9 west and start it again: links come back by themselves.
    let mut child = west.child.take().expect("running");
    child.kill().expect("kill -9");
    let _ = child.wait();
    drop(west);
    let down = home.wait_for("east", &["link", "status", "link1"], "not connected");
    assert!(down.contains("Link link1 not connected ("), "{down}");
    west = home.serve("west", west_port);
    home.ok("east", &["link", "status", "link1", "--wait", "30"]);
    home.wait_for("west", &["status"], "It is linked to 2 other sites.");

    // east stops answering (SIGSTOP): west drops it when heartbeats time
    // out, and takes it back when it answers again.
    let east_pid = _east.child.as_ref().expect("running").id().to_string();
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &east_pid])
            .status()
            .expect("kill");
        assert!(ok.success());
    };
    signal("-STOP");
    home.wait_for("west", &["status"], "It is linked to 1 other site.");
    signal("-CONT");
    home.wait_for("west", &["status"], "It is linked to 2 other sites.");
    drop(west);
}

// ---------------------------------------------------------------------------
// Exit codes
// ---------------------------------------------------------------------------

/// A copy of a claim token file with another password.
fn with_wrong_password(home: &Home, token: &Path, name: &str) -> PathBuf {
    let forged: String = std::fs::read_to_string(token)
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
    let path = home.file(name);
    std::fs::write(&path, forged).unwrap();
    path
}

/// A refusal by the remote site is exit 1 and is not tried again: a wrong
/// password (403) is one POST, a used-up claim (404) too.
#[test]
fn a_claim_refused_by_the_remote_site_is_exit_1_after_one_post() {
    let home = Home::new();
    let port = home.init("west");
    home.init("east");
    home.init("north");
    let daemon = home.serve("west", port);
    let token = home.token("west", "good.yaml", &[]);
    let forged = with_wrong_password(&home, &token, "forged.yaml");

    let out = home.run("east", &["link", "create", forged.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("Failed to redeem claim: Claim refused"),
        "{out}"
    );
    assert!(!out.stderr.contains("try the same command again"), "{out}");

    home.ok("east", &["link", "create", token.to_str().unwrap()]);
    let out = home.run("north", &["link", "create", token.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr
            .contains("Failed to redeem claim: No such claim: no uses left (1 use allowed)"),
        "{out}"
    );

    // The server saw one POST per command: one 403, one 200, one 404.
    let (_, log) = daemon.stop();
    let answered = |status: &str| log.lines().filter(|l| l.contains(status)).count();
    assert_eq!(answered(": 403 refused"), 1, "{log}");
    assert_eq!(answered(": 200 redeemed"), 1, "{log}");
    assert_eq!(answered(": 404 refused"), 1, "{log}");
    assert!(
        !log.contains(" more in the "),
        "nothing was repeated: {log}"
    );
}

/// A remote site that cannot be reached is exit 4, with the advice to try
/// again.
#[test]
fn an_unreachable_claims_server_is_exit_4() {
    let home = Home::new();
    home.init("west");
    home.init("east");
    let token = home.token("west", "secret.yaml", &[]);
    let out = home.run("east", &["link", "create", token.to_str().unwrap()]);
    assert_eq!(out.code, 4, "{out}");
    assert!(
        out.stderr
            .contains("Failed to redeem claim: cannot connect to 127.0.0.1:"),
        "{out}"
    );
    assert!(out.stderr.contains("(3 attempts)"), "{out}");
    assert!(
        out.stderr.contains("try the same command again later"),
        "{out}"
    );
}

/// Every address `serve` cannot bind is exit 6, naming the address; so is
/// a second `serve` for the same site.
#[test]
fn an_address_in_use_is_exit_6() {
    let home = Home::new();
    let (claims, ir, edge) = (free_port(), free_port(), free_port());
    home.init_on("west", claims, ir, edge);
    for (port, what) in [
        (claims, "claim redemptions"),
        (ir, "inter-router links"),
        (edge, "edge links"),
    ] {
        let taken = TcpListener::bind(("0.0.0.0", port)).unwrap();
        let out = home.run("west", &["serve"]);
        assert_eq!(out.code, 6, "{what}: {out}");
        assert!(
            out.stderr
                .contains(&format!("cannot listen for {what} on 0.0.0.0:{port}")),
            "{out}"
        );
        assert!(out.stderr.contains("in use"), "{out}");
        drop(taken);
    }
    let _west = home.serve("west", claims);
    let out = home.run("west", &["serve"]);
    assert_eq!(out.code, 6, "{out}");
    assert!(
        out.stderr
            .starts_with("error: cannot serve namespace \"west\": 'serve' (process ")
            && out
                .stderr
                .contains(") is running for this site\nstop it first ("),
        "{out}"
    );
}

/// `--help` documents every exit code.
#[test]
fn help_lists_the_exit_codes() {
    let out = Home::new().ok("west", &["--help"]);
    let help = exit_codes(
        out.stdout
            .split_once("Exit codes:\n")
            .expect("an exit code section")
            .1
            .lines()
            .map(|l| match l.trim_start().split_once("  ") {
                Some((code, text)) if code.parse::<u8>().is_ok() => (Some(code), text),
                _ => (None, l.trim()),
            }),
    );
    let codes: Vec<&str> = help.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(codes, ["0", "1", "2", "3", "4", "5", "6"], "{}", out.stdout);
    assert!(help[1].1.starts_with("refused: "), "{help:?}");
    assert!(help[6].1.starts_with("cannot serve: "), "{help:?}");

    // The README's table says exactly the same.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let table = exit_codes(
        readme
            .split_once("| code | meaning |\n|---|---|\n")
            .expect("the README's exit code table")
            .1
            .lines()
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split(" | ").collect();
                (Some(cells[0].trim()), cells[1].trim())
            }),
    );
    assert_eq!(table, help, "README.md and --help disagree");
}

/// (code, text) pairs from lines that start a code or continue its text.
fn exit_codes<'a>(
    lines: impl Iterator<Item = (Option<&'a str>, &'a str)>,
) -> Vec<(String, String)> {
    let mut codes: Vec<(String, String)> = Vec::new();
    for (code, text) in lines {
        match (code, codes.last_mut()) {
            (Some(code), _) => codes.push((code.to_owned(), text.to_owned())),
            (None, Some((_, last))) if !text.is_empty() => {
                last.push(' ');
                last.push_str(text);
            }
            _ => {}
        }
    }
    codes
}

// ---------------------------------------------------------------------------
// Listen addresses
// ---------------------------------------------------------------------------

/// `serve --inter-router-listen 127.0.0.1:<port>` (and the claims and edge
/// ones) listens there and only there, and a site links through it.
#[test]
fn serve_listens_on_the_addresses_given() {
    let home = Home::new();
    let (claims, ir, edge) = (free_port(), free_port(), free_port());
    home.init_on("west", claims, ir, edge);
    let east_claims = home.init("east");
    let listen = |port: u16| format!("127.0.0.1:{port}");
    let west = home.serve_with(
        "west",
        claims,
        &[
            "--claims-listen",
            &listen(claims),
            "--inter-router-listen",
            &listen(ir),
            "--edge-listen",
            &listen(edge),
        ],
    );
    let _east = home.serve("east", east_claims);
    // Only 127.0.0.1 is taken: another loopback address still has the
    // ports free (binding 0.0.0.0 would have taken them everywhere).
    for port in [claims, ir, edge] {
        TcpListener::bind(("127.0.0.2", port))
            .unwrap_or_else(|e| panic!("127.0.0.2:{port} should be free: {e}"));
    }
    let token = home.token("west", "cert.yaml", &["-t", "cert"]);
    home.ok("east", &["link", "create", token.to_str().unwrap()]);
    home.ok("east", &["link", "status", "link1", "--wait", "20"]);
    home.wait_for("west", &["status"], "It is linked to 1 other site.");
    let (_, log) = west.stop();
    assert!(
        log.contains(&format!(
            "listening for links on the inter-router port at 127.0.0.1:{ir}"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("claims at https://127.0.0.1:{claims}")),
        "{log}"
    );

    let out = home.run("west", &["serve", "--inter-router-listen", "127.0.0.1"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("give HOST:PORT"), "{out}");
}

// ---------------------------------------------------------------------------
// The log under floods
// ---------------------------------------------------------------------------

/// The number a summary line gives: `<cause>: 41 more in the 10s ...`.
fn repeats(log: &str, cause: &str) -> usize {
    log.lines()
        .filter_map(|l| {
            l.split_once(&format!("{cause}: "))?
                .1
                .split_once(" more in the ")
        })
        .map(|(n, _)| n.parse::<usize>().expect("a count"))
        .sum()
}

/// A flood of bad handshakes on the claims and inter-router ports logs a
/// line and a count per interval, not a line each, and a successful
/// redemption is still logged in full.
#[test]
fn a_flood_of_bad_handshakes_is_counted_not_logged_line_by_line() {
    const N: usize = 300;
    let home = Home::new();
    let (claims, ir, edge) = (free_port(), free_port(), free_port());
    home.init_on("west", claims, ir, edge);
    home.init("east");
    let west = home.serve("west", claims);
    std::thread::sleep(Duration::from_millis(300));
    for port in [claims, ir] {
        for _ in 0..N {
            let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let _ = std::io::Write::write_all(
                &mut socket,
                b"\x16\x03\x01\x00\x05hello, this is not a ClientHello\r\n\r\n",
            );
            // Until serve has dealt with it and closed it (an alert, then
            // the end), so every one is counted however loaded the machine.
            socket
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let _ = std::io::Read::read_to_end(&mut socket, &mut Vec::new());
        }
    }
    let token = home.token("west", "secret.yaml", &[]);
    home.ok("east", &["link", "create", token.to_str().unwrap()]);
    // Let the server finish with the flood, then stop it: stopping prints
    // every count still open.
    std::thread::sleep(Duration::from_millis(1500));
    let (_, log) = west.stop();

    let claims_cause = "claims: connection closed without an answer";
    let links_cause = "links: connection on the inter-router port refused";
    let full_claims = log
        .lines()
        .filter(|l| l.contains("closed without an answer:") && !l.contains(claims_cause))
        .count();
    let full_links = log
        .lines()
        .filter(|l| l.contains("on the inter-router port refused:") && !l.contains(links_cause))
        .count();
    // A few more on the claims port: the test's own checks that serve was
    // up (it connects until serve's claims port and control socket answer).
    let counted_claims = full_claims + repeats(&log, claims_cause);
    assert!(
        (N + 1..=N + 100).contains(&counted_claims),
        "{counted_claims} counted for {N} bad handshakes and a few probes:\n{log}"
    );
    assert_eq!(full_links + repeats(&log, links_cause), N, "{log}");
    assert!(
        full_claims < 10 && full_links < 10,
        "{full_claims} and {full_links} lines for {N} bad handshakes each:\n{log}"
    );
    assert!(log.lines().count() < 40, "{log}");
    assert_eq!(
        log.lines().filter(|l| l.contains(": 200 redeemed")).count(),
        1,
        "{log}"
    );
}

/// With its site directory gone, a running `serve` says so once per
/// interval with a count, not four times a second.
#[test]
fn a_removed_site_directory_is_reported_once_with_a_count() {
    let home = Home::new();
    let claims = home.init("west");
    let west = home.serve("west", claims);
    std::thread::sleep(Duration::from_millis(300));
    std::fs::remove_dir_all(home.path().join("sites/west")).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let (_, log) = west.stop();
    let cause = "links: reading the site record";
    let full = log
        .lines()
        .filter(|l| l.contains("reading the site record:") && !l.contains(cause))
        .count();
    assert_eq!(full, 1, "{log}");
    assert!(repeats(&log, cause) >= 5, "{log}");
}

/// `serve --log-format json` writes one JSON object per event: a timestamp,
/// a level, the message, and on refusals their cause; the repeats of a
/// cause are counted on one summary object that names the cause and count.
#[test]
fn serve_logs_json_objects_with_causes_and_counts() {
    let home = Home::new();
    let port = home.init("west");
    home.init("east");
    let daemon = home.serve_with("west", port, &["--log-format", "json"]);
    let token = home.token("west", "good.yaml", &[]);
    let forged = with_wrong_password(&home, &token, "forged.yaml");
    for _ in 0..3 {
        let out = home.run("east", &["link", "create", forged.to_str().unwrap()]);
        assert_eq!(out.code, 1, "{out}");
    }
    home.ok("east", &["link", "create", token.to_str().unwrap()]);
    let (code, log) = daemon.stop();
    assert_eq!(code, Some(0), "{log}");
    let events: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for event in &events {
        let at = event["timestamp"].as_str().expect("a timestamp");
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("{e}: {at}"));
        assert!(event["message"].is_string(), "{event}");
    }
    let with = |text: &str| {
        events
            .iter()
            .filter(|e| e["message"].as_str().unwrap().contains(text))
            .collect::<Vec<_>>()
    };
    let redeemed = with(": 200 redeemed");
    assert_eq!(redeemed.len(), 1, "{log}");
    assert_eq!(redeemed[0]["level"], "INFO", "{log}");
    assert!(redeemed[0].get("cause").is_none(), "{log}");
    let refused = with(": 403 refused");
    assert_eq!(refused.len(), 1, "the first refusal in full:\n{log}");
    assert_eq!(refused[0]["level"], "WARN", "{log}");
    let cause = refused[0]["cause"].as_str().expect("a cause").to_owned();
    let summary = with(" more in the ");
    assert_eq!(summary.len(), 1, "{log}");
    assert_eq!(summary[0]["cause"], cause.as_str(), "{log}");
    assert_eq!(summary[0]["repeats"], 2, "{log}");
    assert!(
        !log.contains("d3JvbmctcGFzc3dvcmQ"),
        "no password in the log"
    );
}
