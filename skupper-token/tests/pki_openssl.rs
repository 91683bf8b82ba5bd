#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // tests may touch the OS; the core library may not
#![allow(clippy::print_stderr)]
//! Interoperability with OpenSSL: it accepts what we issue, and we accept
//! (and can issue from) what it makes, including Skupper-shaped RSA
//! certificates. Skipped, with a note, when `openssl` is not on PATH.

use std::path::{Path, PathBuf};
use std::process::Command;

use skupper_token::pki::{
    certificate_info, AuthError, CaIssuer, CertifiedKey, PeerVerifier, PkiError, PrivateKey,
    DEFAULT_VALIDITY,
};
use skupper_token::random::SeededRandom;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);

fn have_openssl() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        // CI installs openssl and sets this, so a missing tool fails there.
        assert!(
            std::env::var_os("SKUPPER_TOKEN_REQUIRE_TOOLS").is_none(),
            "`openssl` is not on PATH but SKUPPER_TOKEN_REQUIRE_TOOLS is set: install openssl"
        );
        eprintln!("note: `openssl` not found on PATH; skipping OpenSSL interoperability test");
    }
    ok
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("skupper-pki-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.0.join(name)).unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs openssl; returns (success, stdout + stderr).
fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn must(dir: &Path, args: &[&str]) -> String {
    let (ok, text) = openssl(dir, args);
    assert!(ok, "openssl {args:?} failed:\n{text}");
    text
}

#[test]
fn openssl_verifies_issued_certificates() {
    if !have_openssl() {
        return;
    }
    let tmp = TempDir::new("verify");
    let dir = &tmp.0;
    let mut rng = SeededRandom::new(1);
    let ca = CaIssuer::new_site_ca(&mut rng, NOW, DEFAULT_VALIDITY).unwrap();
    let client = ca
        .issue_client("east", &mut rng, NOW, DEFAULT_VALIDITY)
        .unwrap();
    let server = ca
        .issue_server(
            &["router.west.svc".into(), "10.0.0.1".into()],
            &mut rng,
            NOW,
            DEFAULT_VALIDITY,
        )
        .unwrap();
    tmp.write("ca.pem", ca.ca_pem());
    tmp.write("client.pem", &client.cert_pem);
    tmp.write("client.key", &client.key.to_pem());
    tmp.write("server.pem", &server.cert_pem);
    let at = (NOW + Duration::days(1)).unix_timestamp().to_string();

    for (leaf, purpose) in [
        ("client.pem", "sslclient"),
        ("server.pem", "sslserver"),
        ("server.pem", "sslclient"),
        ("client.pem", "sslserver"),
    ] {
        let out = must(
            dir,
            &[
                "verify", "-attime", &at, "-purpose", purpose, "-CAfile", "ca.pem", leaf,
            ],
        );
        assert!(out.contains(&format!("{leaf}: OK")), "{out}");
    }
    must(
        dir,
        &[
            "verify",
            "-attime",
            &at,
            "-CAfile",
            "ca.pem",
            "-verify_hostname",
            "router.west.svc",
            "server.pem",
        ],
    );
    must(
        dir,
        &[
            "verify",
            "-attime",
            &at,
            "-CAfile",
            "ca.pem",
            "-verify_ip",
            "10.0.0.1",
            "server.pem",
        ],
    );

    // Negative controls: expired, and another CA.
    let late = (NOW + DEFAULT_VALIDITY + Duration::days(1))
        .unix_timestamp()
        .to_string();
    let (ok, out) = openssl(
        dir,
        &[
            "verify",
            "-attime",
            &late,
            "-CAfile",
            "ca.pem",
            "client.pem",
        ],
    );
    assert!(!ok, "expired must fail: {out}");
    let other = CaIssuer::new_site_ca(&mut SeededRandom::new(2), NOW, DEFAULT_VALIDITY).unwrap();
    tmp.write("other.pem", other.ca_pem());
    let (ok, out) = openssl(
        dir,
        &[
            "verify",
            "-attime",
            &at,
            "-CAfile",
            "other.pem",
            "client.pem",
        ],
    );
    assert!(!ok, "other CA must fail: {out}");

    // OpenSSL reads our private key and finds it is the certificate's key.
    must(dir, &["pkey", "-in", "client.key", "-check", "-noout"]);
    let from_key = must(dir, &["pkey", "-in", "client.key", "-pubout"]);
    let from_cert = must(dir, &["x509", "-in", "client.pem", "-noout", "-pubkey"]);
    assert_eq!(from_key, from_cert);

    // Fingerprint and serial formats match OpenSSL's.
    let info = certificate_info(&client.cert_der).unwrap();
    let fp = must(
        dir,
        &[
            "x509",
            "-in",
            "client.pem",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    assert_eq!(
        fp.trim(),
        format!("sha256 Fingerprint={}", info.fingerprint_sha256)
    );
    let serial = must(dir, &["x509", "-in", "client.pem", "-noout", "-serial"]);
    assert_eq!(serial.trim(), format!("serial={}", info.serial_hex));
}

#[test]
fn issues_from_an_openssl_made_ec_ca() {
    if !have_openssl() {
        return;
    }
    let tmp = TempDir::new("ec-ca");
    let dir = &tmp.0;
    // Mixed string types in the subject (countryName is PrintableString,
    // the rest UTF8String): leaves must reproduce it byte for byte.
    must(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/C=US/O=Acme Example/CN=acme site ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    let ca_key = CertifiedKey::from_pem(&tmp.read("ca.pem"), &tmp.read("ca.key")).unwrap();
    let ca = CaIssuer::from_certified_key(&ca_key).unwrap();
    let now = OffsetDateTime::now_utc();
    let leaf = ca
        .issue_client("east", &mut SeededRandom::new(3), now, Duration::days(1))
        .unwrap();
    tmp.write("leaf.pem", &leaf.cert_pem);
    let out = must(
        dir,
        &[
            "verify",
            "-purpose",
            "sslclient",
            "-CAfile",
            "ca.pem",
            "leaf.pem",
        ],
    );
    assert!(out.contains("leaf.pem: OK"), "{out}");

    let v = PeerVerifier::from_pem(&tmp.read("ca.pem")).unwrap();
    assert_eq!(
        v.verify(&[&leaf.cert_der], now).unwrap().common_name,
        "east"
    );
    assert_eq!(
        certificate_info(&leaf.cert_der).unwrap().issuer,
        certificate_info(&ca_key.cert_der).unwrap().subject
    );

    // A multi-valued name component cannot be reproduced as an issuer name:
    // refused when loading, rather than issuing unverifiable leaves.
    must(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "mv.key",
            "-out",
            "mv.pem",
            "-days",
            "30",
            "-multivalue-rdn",
            "-subj",
            "/O=Acme+CN=multi",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
    );
    let mv = CertifiedKey::from_pem(&tmp.read("mv.pem"), &tmp.read("mv.key")).unwrap();
    let err = CaIssuer::from_certified_key(&mv).unwrap_err();
    assert!(
        matches!(&err, PkiError::NotACa { reason, .. } if reason.contains("multi-valued")),
        "{err}"
    );
}

#[test]
fn accepts_skupper_shaped_rsa_certificates() {
    if !have_openssl() {
        return;
    }
    let tmp = TempDir::new("rsa");
    let dir = &tmp.0;
    // Like Skupper on Kubernetes: RSA-2048, SHA-256, CA and leaf with one
    // empty dNSName SAN (written as raw DER, openssl refuses `DNS:`), EKU
    // serverAuth+clientAuth, PKCS#1 leaf key.
    let empty_dns_san = "2.5.29.17=DER:30028200";
    must(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=skupper-site-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
            "-addext",
            "extendedKeyUsage=serverAuth,clientAuth",
            "-addext",
            empty_dns_san,
        ],
    );
    must(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf8.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=east",
        ],
    );
    tmp.write(
        "ext.cnf",
        &format!(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n{empty_dns_san}\n"
        ),
    );
    must(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-sha256",
            "-extfile",
            "ext.cnf",
            "-out",
            "leaf.pem",
        ],
    );
    must(
        dir,
        &[
            "rsa",
            "-in",
            "leaf8.key",
            "-traditional",
            "-out",
            "leaf1.key",
        ],
    );
    assert!(tmp
        .read("leaf1.key")
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));

    let now = OffsetDateTime::now_utc();
    let v = PeerVerifier::from_pem(&tmp.read("ca.pem")).unwrap();
    let leaf = CertifiedKey::from_pem(&tmp.read("leaf.pem"), &tmp.read("leaf1.key")).unwrap();
    let peer = v.verify(&[&leaf.cert_der], now).expect("RSA leaf accepted");
    assert_eq!(peer.common_name, "east");
    let info = certificate_info(&leaf.cert_der).unwrap();
    assert_eq!(info.key_algorithm, "RSA 2048");
    assert_eq!(info.dns_names, vec![String::new()]);
    assert_eq!(leaf.key.algorithm(), "RSA");
    assert_eq!(format!("{:?}", leaf.key), "PrivateKey(RSA)");

    // PKCS#1 and PKCS#8 forms load as the same key; ours re-reads in OpenSSL.
    let pkcs8 = PrivateKey::from_pem(&tmp.read("leaf8.key")).unwrap();
    assert_eq!(pkcs8, leaf.key);
    tmp.write("ours.key", &leaf.key.to_pem());
    assert_eq!(
        must(dir, &["pkey", "-in", "ours.key", "-pubout"]),
        must(dir, &["x509", "-in", "leaf.pem", "-noout", "-pubkey"])
    );
    // A tampered RSA signature is refused.
    let mut bad = leaf.cert_der.clone();
    let n = bad.len();
    bad[n - 5] ^= 0x40;
    assert_eq!(
        v.verify(&[&bad], now).unwrap_err(),
        AuthError::BadSignature {
            common_name: "east".into()
        }
    );
    // An RSA CA cannot issue here (only P-256 keys sign).
    let rsa_ca = CertifiedKey::from_pem(&tmp.read("ca.pem"), &tmp.read("ca.key")).unwrap();
    let err = CaIssuer::from_certified_key(&rsa_ca).unwrap_err();
    assert!(
        err.to_string().contains("RSA keys are not supported"),
        "{err}"
    );
}
