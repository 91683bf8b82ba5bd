//! The certificates Skupper 2.x files carry, checked by other code than
//! ours: the Secret a redeeming site stores after `token redeem` at a real
//! `serve`, and the one `link generate` prints. `openssl verify -purpose
//! sslclient` accepts each against the issuing site's CA, the key is the
//! certificate's (`openssl pkey -pubout` = `openssl x509 -pubkey`), and
//! rustls-webpki (rustls's client certificate verifier, as a server
//! checking a linking site would) accepts it too and refuses it against
//! another site's CA.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![allow(clippy::print_stderr)] // the skip note

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, RootCertStore};
use skupper_token::v2::{LinkFile, TlsSecret};

mod common;

use common::Home;

fn have_openssl() -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var_os("SKUPPER_TOKEN_REQUIRE_TOOLS").is_none(),
            "`openssl` is not on PATH but SKUPPER_TOKEN_REQUIRE_TOOLS is set: install openssl"
        );
        eprintln!("skipped: openssl is not installed");
    }
    found
}

/// Runs `openssl ARGS` in `dir`; returns (success, stdout, stderr).
fn openssl(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The Link file an outgoing link of `ns` keeps (what the grant server
/// returned, for a link made by redeeming an AccessToken).
fn stored_link_file(home: &Home, ns: &str, link: &str) -> LinkFile {
    let path = home.site_dir(ns).join(format!("link/{link}.json"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let text = json["record"]["link-file"]
        .as_str()
        .expect("the link record keeps its Link file");
    LinkFile::decode(text.as_bytes()).unwrap()
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("a PEM certificate")
}

/// rustls-webpki's verdict on `secret`'s certificate as a client
/// certificate under `ca_pem`.
fn webpki_verdict(ca_pem: &str, secret: &TlsSecret) -> Result<(), rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.add(der(ca_pem)).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    verifier
        .verify_client_cert(&der(&secret.cert_pem), &[], UnixTime::now())
        .map(|_| ())
}

/// Everything checked of one Secret: the issuing site's CA is its
/// `ca.crt`, openssl and webpki accept its certificate for client use
/// under that CA (and webpki refuses it under `other_ca`), its key is the
/// certificate's, its CN is `cn`.
fn check_secret(dir: &Path, secret: &TlsSecret, ca_pem: &str, other_ca: &str, cn: &str) {
    assert_eq!(secret.ca_pem, ca_pem, "ca.crt is the issuing site's CA");
    std::fs::write(dir.join("site-ca.crt"), ca_pem).unwrap();
    std::fs::write(dir.join("other-ca.crt"), other_ca).unwrap();
    std::fs::write(dir.join("tls.crt"), &secret.cert_pem).unwrap();
    std::fs::write(dir.join("tls.key"), secret.key_pem.expose()).unwrap();

    let (ok, out, err) = openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            "site-ca.crt",
            "-purpose",
            "sslclient",
            "tls.crt",
        ],
    );
    assert!(ok, "openssl verify refused tls.crt: {out}{err}");
    assert_eq!(out, "tls.crt: OK\n");
    let (ok, out, err) = openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            "other-ca.crt",
            "-purpose",
            "sslclient",
            "tls.crt",
        ],
    );
    assert!(
        !ok,
        "openssl verify accepted tls.crt under another CA: {out}"
    );
    assert!(
        err.contains("unable to get local issuer certificate"),
        "{err}"
    );

    let (ok, _, err) = openssl(dir, &["pkey", "-in", "tls.key", "-check", "-noout"]);
    assert!(ok, "openssl cannot read or check tls.key: {err}");
    let (ok, from_key, err) = openssl(dir, &["pkey", "-in", "tls.key", "-pubout"]);
    assert!(ok, "{err}");
    let (ok, from_cert, err) = openssl(dir, &["x509", "-in", "tls.crt", "-noout", "-pubkey"]);
    assert!(ok, "{err}");
    assert!(
        from_key.starts_with("-----BEGIN PUBLIC KEY-----\n"),
        "{from_key}"
    );
    assert_eq!(from_key, from_cert, "tls.key is the key of tls.crt");
    let (ok, subject, err) = openssl(
        dir,
        &[
            "x509", "-in", "tls.crt", "-noout", "-subject", "-nameopt", "RFC2253",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(subject, format!("subject=CN={cn}\n"));

    assert_eq!(webpki_verdict(ca_pem, secret), Ok(()));
    // Every site CA is named `skupper-site-ca`: webpki finds the other
    // CA by name, and its signature check fails.
    assert_eq!(
        webpki_verdict(other_ca, secret),
        Err(rustls::Error::InvalidCertificate(
            CertificateError::BadSignature
        ))
    );
    // rustls, too, finds the key to be the certificate's.
    let key = PrivateKeyDer::from_pem_slice(secret.key_pem.expose().as_bytes()).unwrap();
    let certified = rustls::sign::CertifiedKey::from_der(
        vec![der(&secret.cert_pem)],
        key,
        &rustls::crypto::ring::default_provider(),
    )
    .expect("rustls loads the key");
    assert_eq!(certified.keys_match(), Ok(()));
}

#[test]
fn certificates_from_a_redeemed_grant_and_from_link_generate_verify() {
    if !have_openssl() {
        return;
    }
    let home = Home::new();
    let west_port = home.init("west");
    home.init("east");
    let _west = home.serve("west", west_port);
    let (west_ca, east_ca) = (home.site_ca("west"), home.site_ca("east"));
    let east_id = home.site_id("east");

    // $ skupper-token -n west token issue west.yaml --name for-east
    // $ skupper-token -n east token redeem west.yaml
    let token = home.file("west.yaml");
    home.ok(
        "west",
        &[
            "token",
            "issue",
            token.to_str().unwrap(),
            "--name",
            "for-east",
        ],
    );
    home.ok("east", &["token", "redeem", token.to_str().unwrap()]);
    let stored = stored_link_file(&home, "east", "link1");
    // The Secret is named from the `name` header, the CN from `subject`.
    assert_eq!(stored.secret.name, "for-east");
    let dir = tempfile::tempdir().unwrap();
    check_secret(dir.path(), &stored.secret, &west_ca, &east_ca, &east_id);

    // $ skupper-token -n west link generate to-north
    let out = home.ok("west", &["link", "generate", "to-north"]);
    let generated = LinkFile::decode(out.stdout.as_bytes()).unwrap();
    assert_eq!(generated.secret.name, "to-north");
    let dir = tempfile::tempdir().unwrap();
    check_secret(
        dir.path(),
        &generated.secret,
        &west_ca,
        &east_ca,
        "to-north",
    );
}
