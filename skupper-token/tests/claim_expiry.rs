//! A claim token's expiry: zero (never expires) or at least one second. A
//! shorter one would make a token that is expired before anyone can use it,
//! so it is refused before anything is stored.

use skupper_token::duration::GoDuration;
use skupper_token::harness::{HarnessError, Network};
use skupper_token::site::{SiteError, TokenError, TokenOptions, MIN_CLAIM_EXPIRY};

fn refused(expiry: &str) -> TokenError {
    let net = Network::new(3);
    net.add_site("west").unwrap();
    let options = TokenOptions::claim().expiry(GoDuration::parse(expiry).unwrap());
    let checked = options.validate().unwrap_err();
    match net.create_token("west", &options) {
        Err(HarnessError::Site(SiteError::Token(e))) => {
            assert_eq!(e, checked, "create_token runs the same check");
            assert!(
                net.site("west").unwrap().claims().unwrap().is_empty(),
                "no claim recorded for {expiry}"
            );
            e
        }
        other => panic!("{expiry}: {other:?}"),
    }
}

#[test]
fn expiries_under_one_second_are_refused() {
    for expiry in ["1ns", "999ms", "0.5s"] {
        let e = refused(expiry);
        assert_eq!(
            e,
            TokenError::Invalid {
                what: "claim expiry",
                value: GoDuration::parse(expiry).unwrap().to_string(),
                reason: "a claim token must be valid for at least 1s; give 1s or more, or 0 for a token that never expires".into(),
            }
        );
    }
    assert_eq!(
        refused("1ns").to_string(),
        "invalid claim expiry \"1ns\": a claim token must be valid for at least 1s; give 1s or more, or 0 for a token that never expires"
    );
}

#[test]
fn one_second_and_zero_are_accepted() {
    assert_eq!(MIN_CLAIM_EXPIRY, GoDuration::parse("1s").unwrap());
    let net = Network::new(4);
    net.add_site("west").unwrap();
    for expiry in [MIN_CLAIM_EXPIRY, GoDuration::ZERO] {
        let options = TokenOptions::claim().expiry(expiry);
        assert_eq!(options.validate(), Ok(()));
        net.create_token("west", &options).unwrap();
    }
    let claims = net.site("west").unwrap().claims().unwrap();
    let mut expiries: Vec<_> = claims
        .iter()
        .map(|c| {
            c.expires_at
                .map(|at| at - c.created_at.replace_nanosecond(0).unwrap())
        })
        .collect();
    expiries.sort();
    assert_eq!(expiries, [None, Some(time::Duration::SECOND)]);
}
