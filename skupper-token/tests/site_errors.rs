//! Each family of site operations fails with its own error type, whose
//! message names what is involved.

use std::sync::Arc;

use skupper_token::harness::{HarnessError, Network};
use skupper_token::random::SeededRandom;
use skupper_token::site::{
    CreateSiteError, IncomingError, LinkError, LinkOptions, LoadError, OpenError, RevokeError,
    Site, SiteConfig, SiteError, SiteMode, TokenError, TokenOptions,
};
use skupper_token::store::{Key, MemoryStore, Store};
use time::macros::datetime;
use time::OffsetDateTime;

const T0: OffsetDateTime = datetime!(2026-03-01 9:00 UTC);

fn site(mode: SiteMode) -> (Arc<MemoryStore>, Site<Arc<MemoryStore>>, SeededRandom) {
    let mut rng = SeededRandom::new(5);
    let store = Arc::new(MemoryStore::new());
    let config = SiteConfig::new("west").mode(mode);
    let site = Site::create(store.clone(), &config, T0, &mut rng).unwrap();
    (store, site, rng)
}

#[test]
fn opening_an_empty_store_says_no_site_was_created() {
    let err = Site::open(MemoryStore::new()).unwrap_err();
    assert_eq!(err, OpenError::NotInitialized);
    assert_eq!(
        err.to_string(),
        "no site has been created here yet: create one first"
    );
    // A caller that opens a site as one step of a site operation carries it
    // as a SiteError, message unchanged.
    let carried = SiteError::from(err);
    assert_eq!(carried, SiteError::Open(OpenError::NotInitialized));
    assert_eq!(
        carried.to_string(),
        "no site has been created here yet: create one first"
    );
}

#[test]
fn creating_a_second_site_names_the_one_there() {
    let (store, west, mut rng) = site(SiteMode::Interior);
    let err = Site::create(store, &SiteConfig::new("east"), T0, &mut rng).unwrap_err();
    assert_eq!(
        err,
        CreateSiteError::AlreadyExists {
            namespace: "west".into(),
            id: west.id().into(),
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "a site already exists here: namespace \"west\", id {}; open it instead of creating it",
            west.id()
        )
    );
}

#[test]
fn a_bad_site_name_is_refused_naming_it() {
    let mut rng = SeededRandom::new(5);
    let err = Site::create(
        MemoryStore::new(),
        &SiteConfig::new("West Site"),
        T0,
        &mut rng,
    )
    .unwrap_err();
    assert!(
        matches!(&err, CreateSiteError::Invalid { what: "site name", value, .. } if value == "West Site"),
        "{err:?}"
    );
}

#[test]
fn a_token_name_with_an_outstanding_claim_is_refused() {
    let (_store, west, mut rng) = site(SiteMode::Interior);
    let options = TokenOptions::claim().name("east");
    west.create_claim_token(&options, T0, &mut rng).unwrap();
    let err = west.create_claim_token(&options, T0, &mut rng).unwrap_err();
    assert_eq!(
        err,
        TokenError::ClaimExists {
            name: "east".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "a claim named \"east\" already exists on this site: choose another token name"
    );
}

#[test]
fn an_edge_site_issues_no_tokens_and_revokes_nothing() {
    let (_store, edge, mut rng) = site(SiteMode::Edge);
    for options in [TokenOptions::claim(), TokenOptions::cert()] {
        assert_eq!(
            edge.create_token(&options, T0, &mut rng).unwrap_err(),
            TokenError::EdgeCannotAcceptConnections
        );
    }
    let err = edge.revoke_access(T0, &mut rng).unwrap_err();
    assert_eq!(err, RevokeError::EdgeCannotAcceptConnections);
    assert_eq!(
        err.to_string(),
        "Edge configuration cannot accept connections"
    );
    assert_eq!(
        edge.revoke_peer("east", T0).unwrap_err(),
        RevokeError::EdgeCannotAcceptConnections
    );
}

#[test]
fn a_handle_whose_site_was_removed_says_so_in_each_family() {
    let (store, west, mut rng) = site(SiteMode::Interior);
    assert!(store.delete(&Key::site()).unwrap());
    assert_eq!(west.record().unwrap_err(), LoadError::NotInitialized);
    assert_eq!(west.status(T0).unwrap_err(), LoadError::NotInitialized);
    assert_eq!(
        west.create_token(&TokenOptions::claim(), T0, &mut rng)
            .unwrap_err(),
        TokenError::NotInitialized
    );
    assert_eq!(
        west.reconcile_incoming(T0).unwrap_err(),
        IncomingError::NotInitialized
    );
    assert_eq!(
        west.revoke_access(T0, &mut rng).unwrap_err(),
        RevokeError::NotInitialized
    );
}

#[test]
fn the_harness_carries_each_family_inside_site_error() {
    let net = Network::new(3);
    net.add_site("west").unwrap();
    assert!(matches!(
        net.add_site("west"),
        Err(HarnessError::SiteExists { .. })
    ));
    let options = TokenOptions::claim().name("east");
    net.create_token("west", &options).unwrap();
    assert_eq!(
        net.create_token("west", &options).unwrap_err(),
        HarnessError::Site(SiteError::Token(TokenError::ClaimExists {
            name: "east".into()
        }))
    );
    assert_eq!(
        net.revoke_peer("west", "nobody").unwrap_err(),
        HarnessError::Site(SiteError::Revoke(RevokeError::UnknownPeer {
            peer: "nobody".into()
        }))
    );
}

#[test]
fn a_token_from_this_site_and_an_unknown_link_are_refused_as_link_errors() {
    let (_store, west, mut rng) = site(SiteMode::Interior);
    let token = west
        .create_token(&TokenOptions::cert(), T0, &mut rng)
        .unwrap();
    let err = west
        .add_link(
            token.encode().as_bytes(),
            &LinkOptions::default(),
            T0,
            &mut SeededRandom::new(7),
        )
        .unwrap_err();
    assert_eq!(err, LinkError::LinkToSelf);
    assert_eq!(
        err.to_string(),
        "Can't create connection to self with token"
    );
    let err = west.delete_link("link9").unwrap_err();
    assert_eq!(
        err,
        LinkError::NoSuchLink {
            name: "link9".into()
        }
    );
    assert_eq!(err.to_string(), "No such link \"link9\"");
}
