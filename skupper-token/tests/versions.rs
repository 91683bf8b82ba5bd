//! Version checks between sites, as Skupper does them: a remote site is
//! refused only when it is older than this site AND older than 0.8.0.

use skupper_token::version::*;

#[test]
fn skupper_rules() {
    let local = VERSION;
    assert_eq!(local, "1.9.6");
    assert_eq!(MINIMUM_VERSION, "0.8.0");
    // Empty: refused.
    assert_eq!(check_remote_version("", local), Err(VersionError::Empty));
    // Unreadable: accepted.
    assert_eq!(check_remote_version("undefined", local), Ok(()));
    assert_eq!(check_remote_version("dev", local), Ok(()));
    // Older than the minimum and than this site: refused.
    assert!(matches!(
        check_remote_version("0.7.0", local),
        Err(VersionError::TooOld { remote }) if remote == "0.7.0"
    ));
    // Older than the minimum but not older than this site: accepted.
    assert_eq!(check_remote_version("0.7.0", "0.6.0"), Ok(()));
    // Suffixes and a leading v are fine.
    assert_eq!(check_remote_version("v1.4.2-rc1", local), Ok(()));
    assert_eq!(check_remote_version("0.8.0", local), Ok(()));
    assert_eq!(check_remote_version("1.5.2", local), Ok(()));
    assert!(check_remote_version("v0.7.99", local).is_err());
}

#[test]
fn refusal_text_is_skupper_text() {
    for err in [
        check_remote_version("", VERSION).unwrap_err(),
        check_remote_version("0.5.1", VERSION).unwrap_err(),
    ] {
        assert!(
            err.to_string().starts_with(MINIMUM_VERSION_MESSAGE),
            "{err}"
        );
    }
    assert!(check_remote_version("0.5.1", VERSION)
        .unwrap_err()
        .to_string()
        .contains("0.5.1"));
}

#[test]
fn versions_parse_and_order() {
    let v = |s| Version::parse(s).unwrap();
    assert!(v("1.10.0") > v("1.9.6"));
    assert!(v("v1.4.2-rc1") == v("1.4.2"));
    assert_eq!(v("1.9.6").to_string(), "1.9.6");
    assert_eq!(Version::parse("undefined"), None);
}

proptest::proptest! {
    #[test]
    fn never_panics(remote in ".{0,20}", local in ".{0,20}") {
        let _ = check_remote_version(&remote, &local);
    }
}
