//! `token create` refuses options it cannot honour, as bad arguments (exit
//! code 2), before anything is created: a negative expiry, an expiry under
//! one second, and claim-only options given for a cert token.

// Tests start processes.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::Home;

/// Runs `token create` with `args` and requires it to fail with exit code 2
/// and exactly `message` on standard error, leaving no token and no claim.
fn refused(home: &Home, args: &[&str], message: &str) {
    let file = home.file("secret.yaml");
    let mut all = vec!["token", "create", file.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = home.run("west", &all);
    assert_eq!(out.code, 2, "{out}");
    assert_eq!(out.stderr, message, "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert!(!file.exists(), "no token written: {out}");
    assert_eq!(home.claims("west"), Vec::<String>::new(), "no claim: {out}");
}

#[test]
fn negative_expiry_is_a_duration_error() {
    let home = Home::new();
    home.init("west");
    refused(
        &home,
        &["--expiry", "-5m"],
        "error: invalid value '-5m' for '--expiry <DURATION>': negative duration \"-5m\": a token expiry cannot be negative (use 0 for a token that never expires)\n\nFor more information, try '--help'.\n",
    );
    refused(
        &home,
        &["--uses", "-1"],
        "error: invalid value '-1' for '--uses <USES>': -1 is not in 0..=4294967295\n\nFor more information, try '--help'.\n",
    );
}

#[test]
fn expiry_under_one_second_is_refused() {
    let home = Home::new();
    home.init("west");
    for expiry in ["1ns", "999ms"] {
        refused(
            &home,
            &["--expiry", expiry],
            &format!("error: invalid claim expiry \"{expiry}\": a claim token must be valid for at least 1s; give 1s or more, or 0 for a token that never expires\n"),
        );
    }
    // One second is the shortest expiry; zero never expires.
    home.token("west", "one.yaml", &["--expiry", "1s"]);
    home.token("west", "never.yaml", &["--expiry", "0"]);
    assert_eq!(home.claims("west").len(), 2);
}

#[test]
fn claim_options_are_refused_for_cert_tokens() {
    let home = Home::new();
    home.init("west");
    let hint = "drop them for a cert token, or make a claim token (-t claim, the default)";
    refused(
        &home,
        &["-t", "cert", "--uses", "5", "--expiry", "1h"],
        &format!("error: --expiry and --uses cannot be used with -t cert: a cert token has no expiry and no use limit (it is valid until access is revoked)\n{hint}\n"),
    );
    refused(
        &home,
        &["-t", "cert", "--uses", "1"],
        &format!("error: --uses cannot be used with -t cert: a cert token has no expiry and no use limit (it is valid until access is revoked)\n{hint}\n"),
    );
    refused(
        &home,
        &["-t", "cert", "--expiry", "15m0s"],
        &format!("error: --expiry cannot be used with -t cert: a cert token has no expiry and no use limit (it is valid until access is revoked)\n{hint}\n"),
    );
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
    assert_eq!(
        out.stdout,
        format!(
            "Connection token written to {}\n",
            home.file("cert.yaml").display()
        )
    );
}
