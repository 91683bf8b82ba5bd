//! The fuzz targets' checks on stable: a hand-written story through the
//! `ops` model, and every committed corpus file through its target's check.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::fs;
use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use skupper_token::token::{DecodeError, Token, TokenFile};
use skupper_token_fuzz::auth::{canonical_envelope, check_chain, fixture, join_chain, split_chain};
use skupper_token_fuzz::claims::check_requests;
use skupper_token_fuzz::ops::{run, Model, Op, Script};

#[test]
fn a_story_through_the_ops_model() {
    use Op::*;
    let mut m = Model::new();
    let status = |m: &Model, site: &str| m.net().status(site).unwrap().linked_sites;
    // east links to west with a one-use claim, north with a cert token.
    m.step(&CreateClaim {
        site: 0,
        uses: 1,
        expiry: 0,
    });
    m.step(&CreateLink { site: 1, token: 0 });
    m.step(&Tick);
    assert_eq!(status(&m, "west"), 1);
    // The claim is used up: a second redemption fails, a wrong password too.
    m.step(&Redeem {
        token: 0,
        from: 2,
        right_password: true,
    });
    m.step(&Redeem {
        token: 0,
        from: 2,
        right_password: false,
    });
    assert_eq!(m.wrong_password_refusals, 1);
    m.step(&CreateCert { site: 0, name: 1 });
    m.step(&CreateLink { site: 2, token: 1 });
    m.step(&Tick);
    assert_eq!(status(&m, "west"), 2);
    // west revokes east (peer 1 = east's site id); north stays.
    m.step(&RevokePeer { site: 0, peer: 1 });
    m.step(&Tick);
    assert_eq!(status(&m, "west"), 1);
    assert_eq!(status(&m, "east"), 0);
    // The edge site links with an expiring claim, too late.
    m.step(&CreateClaim {
        site: 0,
        uses: 2,
        expiry: 2,
    });
    m.step(&Advance { secs: 10 });
    m.step(&CreateLink { site: 3, token: 2 });
    m.step(&Tick);
    assert_eq!(status(&m, "edge"), 0);
    // Revoke access: everybody is gone.
    m.step(&RevokeAccess { site: 0 });
    m.step(&Tick);
    assert_eq!(status(&m, "west"), 0);
    m.step(&Redeem {
        token: 0,
        from: 1,
        right_password: true,
    });
    m.step(&Reachable { site: 0, up: false });
    m.step(&DeleteLink { site: 1, link: 0 });
    m.step(&Tick);
}

#[test]
fn chain_splitting_round_trips() {
    let a = [1u8, 2, 3];
    let b = [4u8; 300];
    for chain in [
        vec![&a[..]],
        vec![&a[..], &b[..]],
        vec![&b[..], &a[..], &[][..]],
    ] {
        assert_eq!(split_chain(&join_chain(&chain)), chain);
    }
    assert_eq!(split_chain(&[]), vec![&[0u8; 0][..]]);
    assert_eq!(split_chain(&[2, 0xff]).len(), 3);
}

#[test]
fn the_fixture_accepts_what_it_should() {
    let fx = fixture();
    for leaf in &fx.accepted {
        fx.site
            .authenticate_peer(&[leaf], fx.now)
            .expect("accepted");
    }
    assert!(fx.site.authenticate_peer(&[&fx.revoked], fx.now).is_err());
    assert!(fx.site.authenticate_peer(&[&fx.foreign], fx.now).is_err());
    assert!(fx.site.authenticate_peer(&[&fx.ca_der], fx.now).is_err());
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files.iter().map(|f| fs::read(f).unwrap()).collect()
}

#[test]
fn decode_token_corpus() {
    let mut decoded = 0;
    let mut v2 = 0;
    for bytes in corpus("decode_token") {
        if let Ok(t) = Token::decode(&bytes) {
            assert_eq!(Token::decode(t.encode().as_bytes()).unwrap(), t);
            decoded += 1;
        }
        match TokenFile::decode(&bytes) {
            Ok(TokenFile::V1(t)) => assert_eq!(Token::decode(&bytes), Ok(t)),
            Ok(file) => {
                assert_eq!(TokenFile::decode(file.encode().as_bytes()), Ok(file));
                v2 += 1;
            }
            // What is not a 2.x file is refused by both with the same
            // error; a damaged 2.x file gets the 2.x reader's reason.
            Err(e) => match Token::decode(&bytes) {
                Err(DecodeError::SkupperV2 { .. } | DecodeError::MultipleDocuments { .. }) => {}
                other => assert_eq!(other, Err(e)),
            },
        }
    }
    assert!(decoded >= 5);
    assert!(v2 >= 3, "the seeds hold the three Skupper 2.x files");
}

#[test]
fn authenticate_peer_corpus() {
    for bytes in corpus("authenticate_peer") {
        check_chain(&bytes);
    }
}

#[test]
fn claim_request_corpus() {
    let mut ok = 0;
    for bytes in corpus("claim_request") {
        ok += check_requests(&bytes).iter().filter(|&&s| s == 200).count();
    }
    assert!(ok >= 10, "the seeds redeem claims ({ok} redemptions)");
}

/// The seeds answer as Skupper would: uses run out (404), the expired and
/// the revoked-generation claims never redeem, GET is 405, a wrong password
/// 403, an old or missing version 400.
#[test]
fn claim_request_seeds_answer_like_skupper() {
    let seed = |name: &str| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/claim_request");
        check_requests(&fs::read(dir.join(format!("seed-{name}.bin"))).unwrap())
    };
    assert_eq!(seed("post-each"), [200, 200, 200, 200]);
    assert_eq!(seed("post-past-uses"), [200, 200, 404, 200, 404, 200]);
    assert_eq!(seed("post-expired-and-old"), [404, 404]);
    assert_eq!(seed("methods"), [405, 405, 405, 200]);
    assert_eq!(seed("versions"), [400, 400, 200, 200]);
    assert_eq!(seed("wrong-passwords"), [403, 403, 403, 404]);
}

#[test]
fn ops_corpus() {
    for bytes in corpus("ops") {
        let script = Script::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
        run(&script);
    }
}

/// The `authenticate_peer` crash inputs are re-encodings of an issued
/// certificate outside its signed part: canonical_envelope restores the
/// certificate as issued (what lets the target tolerate the known finding).
#[test]
fn crash_inputs_are_reencodings_of_an_issued_certificate() {
    let fx = fixture();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/authenticate_peer");
    for name in [
        "seed-crash-lax-envelope-e12035c7.bin",
        "seed-crash-oid-tag-81650648.bin",
    ] {
        let input = fs::read(dir.join(name)).unwrap();
        let leaf = split_chain(&input)[0];
        assert_ne!(leaf, fx.accepted[1].as_slice());
        assert_eq!(
            canonical_envelope(leaf).as_deref(),
            Some(fx.accepted[1].as_slice()),
            "{name}"
        );
        check_chain(&input);
    }
}

#[test]
fn a_grant_story_through_the_ops_model() {
    use Op::*;
    let mut m = Model::new();
    // west issues a grant of 2 redemptions within 2 minutes.
    m.step(&IssueGrant {
        site: 0,
        allowed: 1,
        window: 1,
    });
    m.step(&RedeemGrant {
        grant: 0,
        from: 1,
        right_code: true,
    });
    m.step(&RedeemGrant {
        grant: 0,
        from: 2,
        right_code: false,
    });
    m.step(&RedeemGrant {
        grant: 0,
        from: 2,
        right_code: true,
    });
    // Used up now; the model checks the refusal is UsedUp.
    m.step(&RedeemGrant {
        grant: 0,
        from: 3,
        right_code: true,
    });
    let made = |m: &Model| m.net().site("west").unwrap().grants().unwrap()[0].redemptions_made;
    assert_eq!(made(&m), 2);
    // west revokes east, whose certificate came from the grant.
    m.step(&RevokePeer { site: 0, peer: 1 });
    // Another grant expires unused.
    m.step(&IssueGrant {
        site: 0,
        allowed: 0,
        window: 0,
    });
    m.step(&Advance { secs: 61 });
    m.step(&RedeemGrant {
        grant: 1,
        from: 1,
        right_code: true,
    });
    m.step(&RedeemGrant {
        grant: 1,
        from: 1,
        right_code: false,
    });
    // Revoke access voids both.
    m.step(&RevokeAccess { site: 0 });
    m.step(&RedeemGrant {
        grant: 0,
        from: 1,
        right_code: true,
    });
    assert!(m.net().site("west").unwrap().grants().unwrap().is_empty());
}
