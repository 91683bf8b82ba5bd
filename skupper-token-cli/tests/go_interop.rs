//! Skupper 2.x grant redemption checked with Go's own HTTP and TLS stack,
//! the one Skupper's 2.x controller is written on, against real processes
//! on 127.0.0.1:
//!
//! - `tests/go/grant_client`: a redeemer configured as Skupper's (trust only
//!   `spec.ca`, TLS 1.3 at least, 10 s, no redirects, `name` and `subject`
//!   headers) redeems an AccessToken from `token issue` at a running
//!   `serve`, over HTTP/1.1 as Skupper's client does and over HTTP/2; Go's
//!   crypto/x509 verifies the returned certificate for client
//!   authentication under the returned CA, and crypto/tls accepts its key;
//!   refusals come back with Skupper's statuses and bodies.
//! - `tests/go/grant_server`: a grant server on Go's net/http with
//!   Skupper's checks, answering with a 200 body recorded from Skupper's own
//!   code, and an AccessToken file in Skupper's layout: `token redeem`
//!   stores the link Skupper's answer describes, sends the headers
//!   Skupper's server reads, and leaves nothing behind when refused.
//!
//! The Go programs use only the standard library and are built here with
//! `go build` (Debian's golang-go; `.ci/run` installs it). Without Go the
//! tests say so and pass, unless SKUPPER_TOKEN_REQUIRE_TOOLS is set.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stderr
)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use skupper_token::v2::AccessToken;

mod common;

use common::Home;

/// The id the Go client sends as `subject` (the redeeming site's id).
const EAST_ID: &str = "5d3c8f0e-1a2b-4c3d-9e8f-0a1b2c3d4e5f";

/// Builds `tests/go/<name>/main.go`; `None` (after saying why) when Go is
/// not installed and tools are not required.
fn go_build(name: &str) -> Option<PathBuf> {
    if Command::new("go").arg("version").output().is_err() {
        assert!(
            std::env::var_os("SKUPPER_TOKEN_REQUIRE_TOOLS").is_none(),
            "go is required (Debian: apt-get install golang-go)"
        );
        eprintln!("skipped: go not installed");
        return None;
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/go")
        .join(name)
        .join("main.go");
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go");
    let binary = out_dir.join(name);
    let output = Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .current_dir(Path::new(env!("CARGO_TARGET_TMPDIR")))
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", out_dir.join("cache"))
        .env("GOFLAGS", "")
        .output()
        .expect("running go build");
    assert!(
        output.status.success(),
        "go build {}: {}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Some(binary)
}

/// What the Go client saw.
fn redeem_with_go(
    client: &Path,
    token: &AccessToken,
    url: &str,
    code: &str,
    dir: &Path,
    h2: bool,
) -> serde_json::Value {
    let ca = dir.join("grant-ca.pem");
    std::fs::write(&ca, &token.ca_pem).unwrap();
    let mut cmd = Command::new(client);
    cmd.args(["-url", url, "-code", code, "-name", &token.name])
        .args(["-subject", EAST_ID])
        .arg("-ca")
        .arg(&ca);
    if h2 {
        cmd.arg("-h2");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "grant_client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn issue(home: &Home, name: &str, uses: &str) -> AccessToken {
    let file = home.file(&format!("{name}.yaml"));
    let file_arg = file.to_str().unwrap();
    home.ok(
        "west",
        &[
            "token",
            "issue",
            file_arg,
            "--name",
            name,
            "--redemptions-allowed",
            uses,
        ],
    );
    AccessToken::decode(&std::fs::read(&file).unwrap()).unwrap()
}

#[test]
fn a_go_client_configured_as_skuppers_redeems_a_grant_at_serve() {
    let Some(client) = go_build("grant_client") else {
        return;
    };
    let home = Home::new();
    let port = home.init("west");
    let _west = home.serve("west", port);
    let token = issue(&home, "for-east", "2");
    let code = token.code.expose().to_owned();

    // Skupper's client offers HTTP/1.1 only (Go drops HTTP/2 when the TLS
    // configuration is its own).
    for (h2, proto) in [(false, "HTTP/1.1"), (true, "HTTP/2.0")] {
        let got = redeem_with_go(&client, &token, &token.url, &code, home.path(), h2);
        assert_eq!(got["status"], 200, "{got}");
        assert_eq!(got["proto"], proto, "{got}");
        assert_eq!(got["tls"], "TLS 1.3", "{got}");
        assert_eq!(got["content_type"], "text/plain; charset=utf-8", "{got}");
        assert_eq!(got["documents"], 2, "a Secret and one Link: {got}");
        let secret = &got["secret"];
        assert_eq!(secret["name"], "for-east", "{got}");
        assert_eq!(secret["cert_cn"], EAST_ID, "CN = subject: {got}");
        assert_eq!(
            secret["chain_ok"], true,
            "Go's x509 verifies it for client auth under ca.crt: {got}"
        );
        assert_eq!(secret["key_ok"], true, "Go's tls accepts the key: {got}");
        assert_eq!(secret["ips"], serde_json::json!(["127.0.0.1"]), "{got}");
        let link = &got["links"][0];
        assert_eq!(link["name"], "for-east", "{got}");
        assert_eq!(link["tls_credentials"], "for-east", "{got}");
        assert_eq!(link["endpoints"], 2, "inter-router and edge: {got}");
    }

    // Used up, wrong code, unknown grant: Skupper's statuses and bodies.
    let got = redeem_with_go(&client, &token, &token.url, &code, home.path(), false);
    assert_eq!(
        (got["status"].clone(), got["body"].clone()),
        (404.into(), "No such access granted\n".into()),
        "{got}"
    );
    let other = issue(&home, "for-north", "1");
    let got = redeem_with_go(
        &client,
        &other,
        &other.url,
        "not-the-code",
        home.path(),
        false,
    );
    assert_eq!(
        (got["status"].clone(), got["body"].clone()),
        (403.into(), "Redemption of access token refused\n".into()),
        "{got}"
    );
    let (base, _) = other.url.rsplit_once('/').unwrap();
    let unknown = format!("{base}/0b5e3c1a-2d4f-4e6a-8b9c-1d2e3f4a5b6c");
    let got = redeem_with_go(&client, &other, &unknown, &code, home.path(), false);
    assert_eq!(
        (got["status"].clone(), got["body"].clone()),
        (404.into(), "No such claim\n".into()),
        "{got}"
    );
    // The refused attempts spent nothing: the right code still redeems.
    let got = redeem_with_go(
        &client,
        &other,
        &other.url,
        other.code.expose(),
        home.path(),
        false,
    );
    assert_eq!(got["status"], 200, "{got}");
}

/// A running `grant_server` and its request log.
struct GoGrantServer {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
    token: PathBuf,
}

impl GoGrantServer {
    fn start(binary: &Path, dir: &Path, uses: u32) -> GoGrantServer {
        let token = dir.join(format!("go-grant-{uses}.yaml"));
        let response = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../skupper-token/tests/data/v2/v2-grant-response.yaml");
        let mut child = Command::new(binary)
            .arg("-response")
            .arg(&response)
            .arg("-token")
            .arg(&token)
            .args(["-uses", &uses.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        GoGrantServer {
            child,
            lines,
            token,
        }
    }

    /// The next request the server logged.
    fn request(&mut self) -> serde_json::Value {
        serde_json::from_str(&self.lines.next().unwrap().unwrap()).unwrap()
    }

    fn url(&self) -> String {
        AccessToken::decode(&std::fs::read(&self.token).unwrap())
            .unwrap()
            .url
    }
}

impl Drop for GoGrantServer {
    fn drop(&mut self) {
        // Closing its standard input stops it.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// `sha256:` of the DER of the site CA in Skupper's recorded answer, as
/// `openssl x509 -outform DER | sha256sum` gives it.
const ANSWER_SITE_CA_SHA256: &str =
    "0df1358a97612b61234351d36eeb6b88ee7196eb866944f36a0d29749071924b";

#[test]
fn token_redeem_takes_skuppers_answer_from_a_go_grant_server() {
    let Some(server) = go_build("grant_server") else {
        return;
    };
    let home = Home::new();
    home.init("east");
    let east_id = home.ok("east", &["-o", "json", "status"]).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut grants = GoGrantServer::start(&server, home.path(), 1);
    let token = grants.token.to_str().unwrap().to_owned();
    let out = home.ok("east", &["token", "redeem", &token]);
    assert_eq!(
        out.stdout.trim_end(),
        format!(
            "Site configured to link to {} (name=link1)\nCheck the status of the link using 'skupper-token link status'.",
            grants.url()
        )
    );
    let seen = grants.request();
    assert_eq!(seen["method"], "POST", "{seen}");
    assert_eq!(seen["tls"], "TLS 1.3", "{seen}");
    assert_eq!(seen["name"], "my-link", "the token's name: {seen}");
    assert_eq!(seen["subject"], east_id.as_str(), "east's id: {seen}");
    assert_eq!(seen["status"], 200, "{seen}");

    // The link is the one Skupper's answer describes: its inter-router
    // endpoint and cost, and the CA it trusts (the answer's ca.crt).
    let link = home
        .ok("east", &["-o", "json", "link", "status", "link1"])
        .json();
    assert_eq!(link["target"], "127.0.0.1:21462", "{link}");
    assert_eq!(link["cost"], 1, "{link}");
    assert_eq!(
        link["remote-site-id"],
        format!("ca-sha256:{ANSWER_SITE_CA_SHA256}").as_str(),
        "{link}"
    );

    // The same file again: that link, not a second redemption (the Go
    // server's CA is not west's site CA, so only the URL can tell).
    let out = home.run("east", &["token", "redeem", &token]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("Already connected") && out.stderr.contains("link1"),
        "{out}"
    );

    // A grant server that refuses: Skupper's reason on stderr, exit 1, and
    // no link stored.
    let mut refusing = GoGrantServer::start(&server, home.path(), 0);
    let refused_token = refusing.token.to_str().unwrap().to_owned();
    let out = home.run("east", &["token", "redeem", &refused_token]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr
            .contains("Controller got failed response: 404 (Not Found) No such access granted"),
        "{out}"
    );
    assert_eq!(refusing.request()["status"], 404);
    let links = home.ok("east", &["-o", "json", "link", "status"]).json();
    let names: Vec<&str> = links["outgoing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["link1"], "{links}");
}
