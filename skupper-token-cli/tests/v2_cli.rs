//! Skupper 2.x from the command line, end to end with `serve` processes:
//! `token issue` on west, `token redeem` on east, the link connects and
//! west counts it; a one-use AccessToken redeemed again is refused with
//! Skupper's message; curl redeems over HTTP/1.1 and HTTP/2 at a real
//! `serve`.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

mod common;

use common::Home;

fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn token_issue_then_token_redeem_links_and_a_used_token_is_refused() {
    let home = Home::new();
    let west_port = home.init("west");
    let east_port = home.init("east");
    let north_port = home.init("north");
    let _west = home.serve("west", west_port);
    let _east = home.serve("east", east_port);
    let _north = home.serve("north", north_port);

    // $ skupper-token -n west token issue west.yaml --name for-east
    let token = home.file("west.yaml");
    let out = home.ok(
        "west",
        &["token", "issue", path(&token), "--name", "for-east"],
    );
    assert_eq!(
        out.stdout.trim_end(),
        format!(
            "Grant \"for-east\" issued: AccessToken written to {}",
            token.display()
        )
    );
    let mode = std::fs::metadata(&token).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&token).unwrap();
    assert!(
        text.starts_with("apiVersion: skupper.io/v2alpha1\nkind: AccessToken\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("url: https://127.0.0.1:{west_port}/")),
        "{text}"
    );

    // $ skupper-token -n east token redeem west.yaml
    let out = home.ok("east", &["token", "redeem", path(&token)]);
    let url = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("url: "))
        .unwrap();
    assert_eq!(
        out.stdout.trim_end(),
        format!("Site configured to link to {url} (name=link1)\nCheck the status of the link using 'skupper-token link status'.")
    );
    home.ok("east", &["link", "status", "link1", "--wait", "20"]);
    home.wait_for("west", &["status"], "It is linked to 1 other site.");
    let link = home
        .ok("east", &["-o", "json", "link", "status", "link1"])
        .json();
    let west_id = home.ok("west", &["-o", "json", "status"]).json()["id"].clone();
    assert!(west_id.is_string(), "{west_id}");
    // The hello told east who west is (the AccessToken names only a CA).
    assert_eq!(link["remote-site-id"], west_id, "{link}");
    assert_eq!(link["connected"], true, "{link}");

    // The AccessToken allowed one redemption: north is refused, nothing
    // is left behind.
    let out = home.run("north", &["token", "redeem", path(&token)]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains(
            "the AccessToken of link \"link1\" was not redeemed: Controller got failed response: 404 (Not Found) No such access granted"
        ),
        "{out}"
    );
    let links = home.ok("north", &["-o", "json", "link", "status"]).json();
    assert_eq!(
        links["outgoing"].as_array().map(Vec::len),
        Some(0),
        "{links}"
    );

    // Redeeming the same file again on east redeems nothing: the link
    // already has what the redemption returned.
    let out = home.run("east", &["token", "redeem", path(&token)]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("Already connected"), "{out}");
}

#[test]
fn link_create_takes_an_access_token_and_token_redeem_refuses_other_files() {
    let home = Home::new();
    let west_port = home.init("west");
    let east_port = home.init("east");
    let _west = home.serve("west", west_port);
    let _east = home.serve("east", east_port);
    let token = home.file("west.yaml");
    home.ok("west", &["token", "issue", path(&token), "--cost", "3"]);
    let out = home
        .ok("east", &["-o", "json", "link", "create", path(&token)])
        .json();
    assert_eq!(out["cost"], 3, "{out}");
    assert_eq!(out["state"], "connecting", "{out}");
    home.ok("east", &["link", "status", "link1", "--wait", "20"]);

    let claim = home.token("west", "claim.yaml", &[]);
    let out = home.run("east", &["token", "redeem", path(&claim)]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "{} is a Skupper 1.x claim token, not an AccessToken",
            claim.display()
        )),
        "{out}"
    );
}

#[test]
fn curl_redeems_at_a_running_serve_over_http1_and_http2() {
    if Command::new("curl").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("SKUPPER_TOKEN_REQUIRE_TOOLS").is_none(),
            "curl is required"
        );
        return;
    }
    let home = Home::new();
    let west_port = home.init("west");
    let _west = home.serve("west", west_port);
    let token = home.file("west.yaml");
    home.ok(
        "west",
        &["token", "issue", path(&token), "--redemptions-allowed", "2"],
    );
    let text = std::fs::read_to_string(&token).unwrap();
    let access = skupper_token::v2::AccessToken::decode(text.as_bytes()).unwrap();
    let (url, code, ca) = (
        access.url.as_str(),
        access.code.expose(),
        access.ca_pem.as_str(),
    );
    let ca_file = home.file("ca.crt");
    std::fs::write(&ca_file, ca).unwrap();
    let curl = |flag: &str| {
        let out = Command::new("curl")
            .args(["-sS", flag, "--tlsv1.3", "--cacert", path(&ca_file)])
            .args(["-H", "name: from-curl", "-H", "subject: curl-site"])
            .args(["--data-binary", code])
            .args(["-w", "\n%{http_version} %{http_code} %{content_type}"])
            .arg(url)
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let out = curl(flag);
        let (body, last) = out.rsplit_once('\n').unwrap();
        assert_eq!(
            last,
            format!("{version} 200 text/plain; charset=utf-8"),
            "{out}"
        );
        assert!(body.starts_with("---\napiVersion: v1\n"), "{body}");
        assert!(body.contains("kind: Link"), "{body}");
    }
    let out = curl("--http2");
    assert_eq!(
        out,
        "No such access granted\n\n2 404 text/plain; charset=utf-8"
    );
}

#[test]
fn link_generate_writes_a_link_file_another_site_links_with() {
    let home = Home::new();
    let west_port = home.init("west");
    let east_port = home.init("east");
    let north_port = home.init("north");
    let _west = home.serve("west", west_port);
    let _east = home.serve("east", east_port);
    let _north = home.serve("north", north_port);

    // $ skupper-token -n west link generate > link.yaml
    let out = home.ok("west", &["link", "generate"]);
    assert!(
        out.stdout
            .starts_with("apiVersion: skupper.io/v2alpha1\nkind: Link\nmetadata:\n  name: link-west-skupper-router\n"),
        "{out}"
    );
    assert_eq!(out.stderr, "");
    let piped = home.file("piped.yaml");
    std::fs::write(&piped, &out.stdout).unwrap();
    // $ skupper-token -n west link generate to-north --cost 2 -f link.yaml
    let file = home.file("link.yaml");
    let out = home.ok(
        "west",
        &[
            "link",
            "generate",
            "to-north",
            "--cost",
            "2",
            "-f",
            path(&file),
        ],
    );
    assert_eq!(
        out.stdout.trim_end(),
        format!("Link file written to {}", file.display())
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    home.ok("east", &["link", "create", path(&piped)]);
    let created = home
        .ok("north", &["-o", "json", "link", "create", path(&file)])
        .json();
    assert_eq!(created["cost"], 2, "{created}");
    for site in ["east", "north"] {
        home.ok(site, &["link", "status", "link1", "--wait", "20"]);
    }
    home.wait_for("west", &["status"], "It is linked to 2 other sites.");

    // Standard output carries the file: no -o json there.
    let out = home.run("west", &["-o", "json", "link", "generate"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains(
            "-o json|yaml cannot be used with 'link generate -': standard output carries the Link file"
        ),
        "{out}"
    );
}

/// A site linked by a 1.x claim token, one by a 2.x AccessToken, one by
/// a 2.x Link file: all connected, and counted alike.
#[test]
fn claim_access_token_and_link_file_links_count_alike() {
    let home = Home::new();
    let ports: Vec<u16> = ["west", "east", "north", "south"]
        .iter()
        .map(|s| home.init(s))
        .collect();
    let _daemons: Vec<_> = ["west", "east", "north", "south"]
        .iter()
        .zip(&ports)
        .map(|(s, p)| home.serve(s, *p))
        .collect();
    let claim = home.token("west", "claim.yaml", &[]);
    home.ok("east", &["link", "create", path(&claim)]);
    let grant = home.file("grant.yaml");
    home.ok("west", &["token", "issue", path(&grant)]);
    home.ok("north", &["token", "redeem", path(&grant)]);
    let file = home.file("link.yaml");
    home.ok("west", &["link", "generate", "-f", path(&file)]);
    home.ok("south", &["link", "create", path(&file)]);
    for site in ["east", "north", "south"] {
        home.ok(site, &["link", "status", "link1", "--wait", "20"]);
    }
    home.wait_for("west", &["status"], "It is linked to 3 other sites.");
}

#[test]
fn token_status_lists_grants_and_token_inspect_explains_v2_files() {
    let home = Home::new();
    home.init("west");
    let token = home.file("west.yaml");
    home.ok(
        "west",
        &[
            "token",
            "issue",
            path(&token),
            "--name",
            "for-east",
            "--redemptions-allowed",
            "2",
            "--expiration-window",
            "30m",
        ],
    );
    let status = home.ok("west", &["token", "status"]);
    assert!(
        status
            .stdout
            .contains("Grants (Skupper 2.x AccessTokens):\n"),
        "{status}"
    );
    let row = status
        .stdout
        .lines()
        .find(|l| l.starts_with("for-east "))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(row.contains(" 0/2 "), "{row}");
    assert!(row.ends_with("active"), "{row}");
    let json = home.ok("west", &["-o", "json", "token", "status"]).json();
    let grant = &json["grants"][0];
    assert_eq!(grant["name"], "for-east");
    assert_eq!(grant["redemptions-made"], 0);
    assert_eq!(grant["redemptions-allowed"], 2);
    assert_eq!(grant["state"], "active");

    let text = std::fs::read_to_string(&token).unwrap();
    let access = skupper_token::v2::AccessToken::decode(text.as_bytes()).unwrap();
    let out = home.ok("west", &["token", "inspect", path(&token)]);
    assert!(
        out.stdout
            .starts_with("Type:           AccessToken (Skupper 2.x"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains(&format!("Redemption URL: {}\n", access.url)),
        "{out}"
    );
    assert!(
        out.stdout.contains("Code:           (present, not shown)"),
        "{out}"
    );
    assert!(!out.stdout.contains(access.code.expose()), "{out}");
    let json = home
        .ok("west", &["-o", "json", "token", "inspect", path(&token)])
        .json();
    assert_eq!(json["type"], "access-token");
    assert!(!json.to_string().contains(access.code.expose()));

    let file = home.file("link.yaml");
    home.ok("west", &["link", "generate", "to-east", "-f", path(&file)]);
    let out = home.ok("west", &["token", "inspect", path(&file)]);
    assert!(
        out.stdout
            .starts_with("Type:           Link file (Skupper 2.x, 1 Link(s)"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("Link:           to-east-skupper-router (cost 1): inter-router 127.0.0.1:"),
        "{out}"
    );
    assert!(
        out.stdout.contains("  private key:  (present, not shown)"),
        "{out}"
    );
    assert!(!out.stdout.contains("PRIVATE KEY"), "{out}");
    let json = home
        .ok("west", &["-o", "yaml", "token", "inspect", path(&file)])
        .yaml();
    assert_eq!(json["type"], "link-file");
    assert_eq!(json["links"][0]["name"], "to-east-skupper-router");
}
