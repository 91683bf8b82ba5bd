//! Other clients against the grant endpoint of a real `serve`: `openssl
//! s_client` negotiates TLS 1.3, verifies the server's chain against the
//! AccessToken's `spec.ca` (and fails to under another site's CA), and
//! POSTs a code with the headers Skupper's Go client sends; `curl` does the
//! same over HTTP/1.1 and HTTP/2. Each gets Skupper's status and body for a
//! good code, a wrong code, an unknown grant, a used-up grant and an
//! expired one.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![allow(clippy::print_stderr)] // the skip note

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use skupper_token::v2::{AccessToken, LinkFile};

mod common;

use common::Home;

fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg(if tool == "openssl" {
            "version"
        } else {
            "--version"
        })
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var_os("SKUPPER_TOKEN_REQUIRE_TOOLS").is_none(),
            "`{tool}` is not on PATH but SKUPPER_TOKEN_REQUIRE_TOOLS is set: install {tool}"
        );
        eprintln!("skipped: {tool} is not installed");
    }
    found
}

const EAST_ID: &str = "7b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

/// `token issue` on `ns` with `extra` options; the AccessToken.
fn issue(home: &Home, ns: &str, file: &str, extra: &[&str]) -> AccessToken {
    let path = home.file(file);
    let mut args = vec!["token", "issue", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    home.ok(ns, &args);
    AccessToken::decode(&std::fs::read(&path).unwrap()).unwrap()
}

/// What `openssl s_client` saw: whether it succeeded, and all it printed.
struct SClient {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl SClient {
    /// The HTTP response in standard output: status, head, body.
    fn response(&self) -> (u16, String, String) {
        let start = self
            .stdout
            .find("HTTP/1.1 ")
            .unwrap_or_else(|| panic!("no HTTP response: {}{}", self.stdout, self.stderr));
        let (head, body) = self.stdout[start..]
            .split_once("\r\n\r\n")
            .expect("an HTTP head");
        let status = head[9..12].parse().unwrap();
        // s_client prints its own lines after the connection closes.
        let body = match body.find("closed\n") {
            Some(end) => &body[..body[..end].rfind('\n').map_or(0, |i| i + 1)],
            None => body,
        };
        (status, head.to_ascii_lowercase(), body.to_owned())
    }
}

/// Connects with `openssl s_client` to `port`, trusting only `ca_file`
/// (`-verify_return_error`: a chain that does not verify ends the
/// handshake), checking the certificate names 127.0.0.1, and sends
/// `request`.
fn s_client(dir: &Path, port: u16, ca_file: &str, request: &str) -> SClient {
    let mut child = Command::new("openssl")
        .current_dir(dir)
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-CAfile", ca_file, "-verify_return_error"])
        .args(["-verify_ip", "127.0.0.1", "-ign_eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    SClient {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The request Skupper 2.x's redeemer makes (Go's `net/http`: canonical
/// header names, its user agent, gzip offered), closing the connection
/// after the answer so that s_client ends.
fn go_request(url: &str, name: &str, code: &str) -> String {
    let rest = url.strip_prefix("https://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: {}\r\nName: {name}\r\nSubject: {EAST_ID}\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n{code}",
        code.len()
    )
}

/// A URL like `token`'s with the code's grant replaced by `id`.
fn with_grant(token: &AccessToken, id: &str) -> String {
    let (base, _) = token.url.rsplit_once('/').unwrap();
    format!("{base}/{id}")
}

#[test]
fn openssl_s_client_gets_skuppers_answers_over_tls_1_3_verified_by_spec_ca() {
    if !have("openssl") {
        return;
    }
    let home = Home::new();
    let port = home.init("west");
    home.init("east");
    let _west = home.serve("west", port);
    let once = issue(&home, "west", "once.yaml", &["--name", "once"]);
    let short = issue(&home, "west", "short.yaml", &["--expiration-window", "1s"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec-ca.crt"), &once.ca_pem).unwrap();
    std::fs::write(dir.path().join("east-ca.crt"), home.site_ca("east")).unwrap();
    let code = once.code.expose();

    // A wrong code first: refused, and the grant is still there.
    let wrong = s_client(
        dir.path(),
        port,
        "spec-ca.crt",
        &go_request(&once.url, "once", "wrong-code-wrong-code-00"),
    );
    assert!(
        wrong.stdout.contains("New, TLSv1.3, Cipher is "),
        "{}",
        wrong.stdout
    );
    assert!(
        wrong.stdout.contains("Verify return code: 0 (ok)"),
        "{}",
        wrong.stdout
    );
    let (status, _, body) = wrong.response();
    assert_eq!(
        (status, body.as_str()),
        (403, "Redemption of access token refused\n")
    );

    // The good code: a 200 with the Secret and the Link.
    let good = s_client(
        dir.path(),
        port,
        "spec-ca.crt",
        &go_request(&once.url, "east-link", code),
    );
    let (status, head, body) = good.response();
    assert_eq!(status, 200, "{}", good.stdout);
    assert!(
        head.contains("\r\ncontent-type: text/plain; charset=utf-8"),
        "{head}"
    );
    let file = LinkFile::decode(body.as_bytes()).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(file.secret.name, "east-link");
    assert_eq!(file.links[0].name, "east-link");

    // Used up, unknown, expired: Skupper's 404s.
    std::thread::sleep(Duration::from_millis(1500));
    let cases = [
        (once.url.clone(), code, "No such access granted\n"),
        (
            with_grant(&once, "9f0e1d2c-3b4a-4958-8776-655443322110"),
            code,
            "No such claim\n",
        ),
        (short.url.clone(), short.code.expose(), "No such claim\n"),
    ];
    for (url, code, want) in cases {
        let out = s_client(
            dir.path(),
            port,
            "spec-ca.crt",
            &go_request(&url, "east-link", code),
        );
        let (status, _, body) = out.response();
        assert_eq!((status, body.as_str()), (404, want), "{url}");
    }

    // Under another site's CA the chain does not verify: no request is
    // sent.
    let other = s_client(
        dir.path(),
        port,
        "east-ca.crt",
        &go_request(&once.url, "east-link", code),
    );
    assert!(!other.ok, "{}", other.stdout);
    assert!(
        other
            .stderr
            .contains("verify error:num=20:unable to get local issuer certificate"),
        "{}{}",
        other.stdout,
        other.stderr
    );
    assert!(!other.stdout.contains("HTTP/1.1 "), "{}", other.stdout);

    // The grants' counts as west keeps them.
    let status = home.ok("west", &["-o", "json", "token", "status"]).json();
    let grants = status["grants"].as_array().unwrap();
    let once_grant = grants.iter().find(|g| g["name"] == "once").unwrap();
    assert_eq!(once_grant["redemptions-made"], 1, "{status}");
    assert_eq!(once_grant["state"], "used up", "{status}");
}

#[test]
fn curl_gets_skuppers_refusals_from_a_running_serve() {
    if !have("curl") {
        return;
    }
    let home = Home::new();
    let port = home.init("west");
    let _west = home.serve("west", port);
    let token = issue(&home, "west", "token.yaml", &[]);
    let short = issue(&home, "west", "short.yaml", &["--expiration-window", "1s"]);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, &token.ca_pem).unwrap();
    let curl = |url: &str, code: &str, http: &str| {
        let body = dir.path().join("code");
        std::fs::write(&body, code).unwrap();
        let out = Command::new("curl")
            .args(["-sS", http, "--tlsv1.3", "--max-time", "20", "--cacert"])
            .arg(&ca)
            .args([
                "-H",
                "name: east-link",
                "-H",
                &format!("subject: {EAST_ID}"),
            ])
            .arg("--data-binary")
            .arg(format!("@{}", body.display()))
            .args(["-w", "\n%{http_version} %{http_code} %{ssl_verify_result}"])
            .arg(url)
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let code = token.code.expose();
    std::thread::sleep(Duration::from_millis(1500));
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        assert_eq!(
            curl(&token.url, "wrong-code-wrong-code-00", flag),
            format!("Redemption of access token refused\n\n{version} 403 0")
        );
        assert_eq!(
            curl(
                &with_grant(&token, "9f0e1d2c-3b4a-4958-8776-655443322110"),
                code,
                flag
            ),
            format!("No such claim\n\n{version} 404 0")
        );
        assert_eq!(
            curl(&short.url, short.code.expose(), flag),
            format!("No such claim\n\n{version} 404 0")
        );
    }
    // The wrong codes spent nothing: the good one still redeems.
    let out = curl(&token.url, code, "--http2");
    assert!(out.ends_with("\n2 200 0"), "{out}");
    assert!(out.starts_with("---\napiVersion: v1\n"), "{out}");
}
