//! Which site may use a certificate to link in: a claim's certificate only
//! by the site that redeemed it, a cert token's by whoever holds the file.

use skupper_token::claim::RedeemRequest;
use skupper_token::harness::Network;
use skupper_token::pki::{pem_to_der, AuthError};
use skupper_token::site::{PeerHello, TokenOptions};
use skupper_token::token::Token;
use skupper_token::version::VERSION;

fn hello(site_id: &str) -> PeerHello {
    PeerHello {
        site_id: site_id.into(),
        site_name: "someone".into(),
        link: "link1".into(),
    }
}

#[test]
fn a_claims_certificate_links_only_the_site_that_redeemed_it() {
    let net = Network::new(7);
    for name in ["west", "east", "north"] {
        net.add_site(name).unwrap();
    }
    let west = net.site("west").unwrap();
    let east_id = net.site("east").unwrap().id().to_owned();
    let north_id = net.site("north").unwrap().id().to_owned();
    let Token::Claim(claim) = net.create_token("west", &TokenOptions::claim()).unwrap() else {
        panic!("a claim token")
    };
    let cert = net
        .with_rng(|rng| {
            west.redeem_claim(
                &RedeemRequest {
                    claim: claim.name.clone(),
                    password: claim.password.expose().as_bytes().to_vec(),
                    site_id: east_id.clone(),
                    site_version: VERSION.into(),
                },
                net.now(),
                rng,
            )
        })
        .expect("east redeems");
    let der = pem_to_der(&cert.cert_pem).unwrap();

    // North holds east's certificate (say, a copied file) and says so.
    let err = west
        .accept_incoming(&[&der], &hello(&north_id), net.now())
        .expect_err("north cannot link with east's claim certificate");
    assert!(
        matches!(&err, AuthError::WrongSite { claim: c, common_name, claimed_site_id }
            if *c == claim.name && *common_name == east_id && *claimed_site_id == north_id),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(&claim.name) && text.contains(&east_id) && text.contains(&north_id));
    assert!(
        west.incoming().is_empty(),
        "nothing recorded for the refusal"
    );

    // East itself links in.
    let link = west
        .accept_incoming(&[&der], &hello(&east_id), net.now())
        .expect("east links with its own certificate");
    assert_eq!(link.peer_site_id, east_id);
    assert_eq!(west.incoming().len(), 1);
}

#[test]
fn a_cert_token_links_whichever_site_holds_it() {
    let net = Network::new(8);
    for name in ["west", "east", "north"] {
        net.add_site(name).unwrap();
    }
    let west = net.site("west").unwrap();
    let Token::Cert(cert) = net.create_token("west", &TokenOptions::cert()).unwrap() else {
        panic!("a cert token")
    };
    let der = pem_to_der(&cert.cert_pem).unwrap();
    for site in ["east", "north"] {
        let id = net.site(site).unwrap().id().to_owned();
        west.accept_incoming(&[&der], &hello(&id), net.now())
            .expect("a cert token is not bound to a site");
    }
    assert_eq!(west.incoming().len(), 2);
}

#[test]
fn a_grants_certificate_links_only_the_site_that_redeemed_it() {
    let net = Network::new(9);
    for name in ["west", "east", "north"] {
        net.add_site(name).unwrap();
    }
    let west = net.site("west").unwrap();
    let east_id = net.site("east").unwrap().id().to_owned();
    let north_id = net.site("north").unwrap().id().to_owned();
    let (_, token) = net
        .issue_grant("west", &skupper_token::v2::GrantOptions::new("to-east"))
        .unwrap();
    let request = skupper_token::v2::GrantRedemption {
        grant: token.url.rsplit('/').next().unwrap().to_owned(),
        code: token.code.expose().as_bytes().to_vec(),
        name: None,
        subject: Some(east_id.clone()),
    };
    let links = net
        .with_rng(|rng| west.redeem_grant(&request, net.now(), rng))
        .expect("east redeems");
    let der = pem_to_der(&links.secret.cert_pem).unwrap();

    let err = west
        .accept_incoming(&[&der], &hello(&north_id), net.now())
        .expect_err("north cannot link with east's grant certificate");
    assert!(
        matches!(&err, AuthError::WrongSite { claim: c, common_name, claimed_site_id }
            if c == "to-east" && *common_name == east_id && *claimed_site_id == north_id),
        "{err:?}"
    );
    assert!(west.incoming().is_empty());
    let link = west
        .accept_incoming(&[&der], &hello(&east_id), net.now())
        .expect("east links with its own certificate");
    assert_eq!(link.peer_site_id, east_id);
}
