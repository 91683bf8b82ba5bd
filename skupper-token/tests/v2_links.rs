//! One model of an outgoing link whatever token made it: a 1.x claim or
//! cert token, a Skupper 2.x AccessToken (redeemed at the issuing site's
//! grant server, here in memory) or a Skupper 2.x Link file. "Already
//! connected", status and the stored record treat them alike.

use skupper_token::link::{ca_fingerprint, ca_site_id, LinkRecord, LinkState};
use skupper_token::link_ops::GrantRedeem;
use skupper_token::random::SeededRandom;
use skupper_token::site::{LinkError, LinkOptions, Site, SiteConfig, TokenOptions};
use skupper_token::store::{Key, MemoryStore, Record, RecordKind, Store};
use skupper_token::time::OffsetDateTime;
use skupper_token::transport::TransportError;
use skupper_token::v2::grant_redeem::http_answer;
use skupper_token::v2::{AccessToken, GrantOptions, GrantRedemption, LinkFile};

struct Sites {
    now: OffsetDateTime,
    rng: SeededRandom,
    west: Site<MemoryStore>,
    east: Site<MemoryStore>,
    north: Site<MemoryStore>,
    south: Site<MemoryStore>,
}

fn sites() -> Sites {
    let now = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
    let mut rng = SeededRandom::new(21);
    let mut site =
        |name: &str| Site::create(MemoryStore::new(), &SiteConfig::new(name), now, &mut rng);
    Sites {
        west: site("west").unwrap(),
        east: site("east").unwrap(),
        north: site("north").unwrap(),
        south: site("south").unwrap(),
        now,
        rng,
    }
}

fn ca_of(site: &Site<MemoryStore>) -> String {
    site.record().unwrap().ca.unwrap().cert_pem
}

/// `issuer`'s grant server answering `redeem`, in memory.
fn answer(
    issuer: &Site<MemoryStore>,
    redeem: &GrantRedeem,
    now: OffsetDateTime,
    rng: &mut SeededRandom,
) -> Result<(u16, Vec<u8>), TransportError> {
    let outcome = issuer.redeem_grant(&GrantRedemption::of_request(&redeem.request), now, rng);
    let (status, body) = http_answer(&outcome);
    Ok((status, body.into_bytes()))
}

#[test]
fn an_access_token_link_is_pending_until_redeemed_then_holds_the_returned_link() {
    let mut s = sites();
    let (_, token) = s
        .west
        .issue_grant(
            &GrantOptions {
                link_cost: 7,
                ..GrantOptions::new("to-east")
            },
            s.now,
            &mut s.rng,
        )
        .unwrap();
    let created = s
        .east
        .create_link(
            token.encode().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap();
    assert!(created.redemption.is_none());
    assert!(created.more.is_empty());
    let link = &created.link;
    assert_eq!(*link.state(), LinkState::Pending);
    assert_eq!(link.token_kind(), "AccessToken");
    assert_eq!(link.target(), token.url);
    // No site id in a 2.x file: the link knows its remote site by its CA.
    assert_eq!(link.remote_site_id, ca_site_id(&ca_of(&s.west)));
    assert_eq!(link.remote_ca, ca_fingerprint(&ca_of(&s.west)));
    assert_eq!(
        link.status().to_string(),
        format!(
            "Link link1 not connected (waiting for the AccessToken at {} to be redeemed)",
            token.url
        )
    );
    let redeem = created.grant_redemption.expect("an AccessToken to redeem");
    assert!(redeem.new_link);
    assert_eq!(redeem.request.subject, s.east.id());
    assert_eq!(redeem.request.name, "to-east");
    // A running site leaves it to whoever made the link.
    assert!(s.east.process_links().unwrap().is_empty());

    let reply = answer(&s.west, &redeem, s.now, &mut s.rng);
    let links = s
        .east
        .handle_grant_redemption(&redeem, reply, s.now)
        .unwrap();
    assert_eq!(links.len(), 1);
    let link = &links[0];
    assert_eq!(*link.state(), LinkState::Connecting);
    assert_eq!(link.token_kind(), "link file");
    assert_eq!(link.cost, 7, "the token's linkCost");
    assert_eq!(link.target(), "127.0.0.1:55671");
    assert_eq!(link.remote_site_id, ca_site_id(&ca_of(&s.west)));
    let credentials = link.cert_token().unwrap().unwrap();
    assert_eq!(credentials.ca_pem, ca_of(&s.west));
    let info = skupper_token::pki::certificate_info(
        &skupper_token::pki::pem_to_der(&credentials.cert_pem).unwrap(),
    )
    .unwrap();
    assert_eq!(info.common_name.as_deref(), Some(s.east.id()));
    // The code is forgotten once redeemed.
    let stored = s
        .east
        .store()
        .load(&Key::new(RecordKind::Link, "link1"))
        .unwrap()
        .unwrap();
    let text = serde_json::to_string(&stored.record).unwrap();
    assert!(!text.contains(token.code.expose()));
    assert!(
        text.contains(&format!(
            "\"schema-version\":{}",
            skupper_token::link::LINK_RECORD_SCHEMA
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("\"instance\":\"{}\"", link.instance())),
        "{text}"
    );
    // Where the AccessToken came from stays: it is redeemed once.
    assert!(
        text.contains(&format!("\"access-token-url\":\"{}\"", token.url)),
        "{text}"
    );
    // Now the site dials it like any other link.
    let dial = s.east.dial_link("link1").unwrap();
    assert_eq!(dial.endpoint.to_string(), "127.0.0.1:55671");
    assert_eq!(dial.credentials, credentials);
}

#[test]
fn a_refused_access_token_leaves_nothing_behind_with_skuppers_message() {
    let mut s = sites();
    let (_, token) = s
        .west
        .issue_grant(&GrantOptions::new("once"), s.now, &mut s.rng)
        .unwrap();
    // North redeems it first.
    let created = s
        .north
        .create_link(
            token.encode().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap();
    let redeem = created.grant_redemption.unwrap();
    let reply = answer(&s.west, &redeem, s.now, &mut s.rng);
    s.north
        .handle_grant_redemption(&redeem, reply, s.now)
        .unwrap();

    let created = s
        .east
        .create_link(
            token.encode().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap();
    let redeem = created.grant_redemption.unwrap();
    let reply = answer(&s.west, &redeem, s.now, &mut s.rng);
    let err = s
        .east
        .handle_grant_redemption(&redeem, reply, s.now)
        .unwrap_err();
    let LinkError::GrantRedemption {
        link,
        reason,
        retryable,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(link, "link1");
    assert_eq!(
        reason,
        "Controller got failed response: 404 (Not Found) No such access granted"
    );
    assert!(!retryable);
    assert_eq!(
        err.to_string(),
        "the AccessToken of link \"link1\" was not redeemed: Controller got failed response: 404 (Not Found) No such access granted"
    );
    assert_eq!(s.east.links().unwrap(), vec![]);

    // An unreachable server, for a link that stays: failed, retryable,
    // with the reason.
    let (_, token) = s
        .west
        .issue_grant(&GrantOptions::new("later"), s.now, &mut s.rng)
        .unwrap();
    s.east
        .add_link(
            token.encode().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap();
    let redeem = s.east.redeem_grant_link("link1").unwrap();
    assert!(!redeem.new_link);
    let err = s
        .east
        .handle_grant_redemption(
            &redeem,
            Err(TransportError::Unreachable {
                reason: "connection refused".into(),
            }),
            s.now,
        )
        .unwrap_err();
    assert!(
        matches!(
            &err,
            LinkError::GrantRedemption {
                retryable: true,
                ..
            }
        ),
        "{err:?}"
    );
    let link = s.east.link("link1").unwrap();
    assert!(
        matches!(link.state(), LinkState::Failed { retryable: true, reason } if reason.contains("connection refused")),
        "{:?}",
        link.state()
    );
    // Redeemed again, it connects.
    let redeem = s.east.redeem_grant_link("link1").unwrap();
    let reply = answer(&s.west, &redeem, s.now, &mut s.rng);
    let links = s
        .east
        .handle_grant_redemption(&redeem, reply, s.now)
        .unwrap();
    assert_eq!(*links[0].state(), LinkState::Connecting);
}

#[test]
fn a_link_file_makes_a_connecting_link_and_one_link_per_endpoint_group() {
    let mut s = sites();
    let file = s
        .west
        .generate_link_file("to-east", 4, None, s.now, &mut s.rng)
        .unwrap();
    let created = s
        .east
        .create_link(
            file.encode_generated().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap();
    assert!(created.redemption.is_none() && created.grant_redemption.is_none());
    assert_eq!(*created.link.state(), LinkState::Connecting);
    assert_eq!(created.link.cost, 4, "the Link's cost");
    assert_eq!(created.link.remote_site_id, ca_site_id(&ca_of(&s.west)));
    assert_eq!(created.link.target(), "127.0.0.1:55671");

    // A remote site with two routers: two Links, two links.
    let mut two = s
        .north
        .generate_link_file("to-east", 1, None, s.now, &mut s.rng)
        .unwrap();
    let mut second = two.links[0].clone();
    second.name = "to-east-router-2".into();
    for e in &mut second.endpoints {
        e.host = "10.0.0.2".into();
        e.group = "router-2".into();
    }
    two.links.push(second);
    let created = s
        .east
        .create_link(
            two.encode_generated().as_bytes(),
            &LinkOptions::default().name("north"),
            s.now,
            &mut s.rng,
        )
        .unwrap();
    let names: Vec<_> = std::iter::once(&created.link)
        .chain(&created.more)
        .map(|l| (l.name.clone(), l.target().to_owned()))
        .collect();
    assert_eq!(
        names,
        [
            ("north".to_owned(), "127.0.0.1:55671".to_owned()),
            ("north-2".to_owned(), "10.0.0.2:55671".to_owned()),
        ]
    );
    assert_eq!(s.east.links().unwrap().len(), 3);
}

#[test]
fn already_connected_holds_across_formats() {
    let mut s = sites();
    let cert = s
        .west
        .create_cert_token(&TokenOptions::cert(), s.now, &mut s.rng)
        .unwrap();
    s.east
        .create_link(
            cert.encode().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap();
    // A 2.x Link file and AccessToken from the same site: the same CA.
    let file = s
        .west
        .generate_link_file("again", 1, None, s.now, &mut s.rng)
        .unwrap();
    let (_, token) = s
        .west
        .issue_grant(&GrantOptions::new("again"), s.now, &mut s.rng)
        .unwrap();
    for bytes in [file.encode_generated(), token.encode()] {
        let err = s
            .east
            .create_link(bytes.as_bytes(), &LinkOptions::default(), s.now, &mut s.rng)
            .unwrap_err();
        assert!(
            matches!(&err, LinkError::AlreadyConnected { link, .. } if link == "link1"),
            "{err:?}"
        );
    }
    // And the other way: a link file first, a claim token after.
    let file = s
        .north
        .generate_link_file("n", 1, None, s.now, &mut s.rng)
        .unwrap();
    s.east
        .create_link(
            file.encode_generated().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap();
    let claim = s
        .north
        .create_claim_token(&TokenOptions::claim(), s.now, &mut s.rng)
        .unwrap();
    let err = s
        .east
        .create_link(
            claim.encode().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap_err();
    assert!(
        matches!(&err, LinkError::AlreadyConnected { link, .. } if link == "link2"),
        "{err:?}"
    );
    // --replace: delete the link it names, then create.
    s.east.delete_link("link2").unwrap();
    s.east
        .create_link(
            claim.encode().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap();

    // A site's own 2.x files link nowhere.
    let own = s
        .east
        .generate_link_file("self", 1, None, s.now, &mut s.rng)
        .unwrap();
    let err = s
        .east
        .create_link(
            own.encode_generated().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap_err();
    assert!(matches!(err, LinkError::LinkToSelf), "{err:?}");
}

/// An AccessToken whose `spec.ca` is not the site CA (Skupper's grant
/// server has a CA of its own): `north`'s CA stands in for it.
fn from_own_grant_server(token: &AccessToken, grant_server_ca: &str) -> AccessToken {
    AccessToken {
        ca_pem: grant_server_ca.to_owned(),
        ..token.clone()
    }
}

#[test]
fn an_access_token_is_redeemed_once_even_when_its_ca_is_the_grant_servers() {
    let mut s = sites();
    let (_, token) = s
        .west
        .issue_grant(&GrantOptions::new("once"), s.now, &mut s.rng)
        .unwrap();
    let token = from_own_grant_server(&token, &ca_of(&s.north));
    let bytes = token.encode();
    let created = s
        .east
        .create_link(bytes.as_bytes(), &LinkOptions::default(), s.now, &mut s.rng)
        .unwrap();
    let redeem = created.grant_redemption.unwrap();
    let reply = answer(&s.west, &redeem, s.now, &mut s.rng);
    let links = s
        .east
        .handle_grant_redemption(&redeem, reply, s.now)
        .unwrap();
    // Redeemed: the link now knows west by west's site CA, not by the
    // grant server's CA the token named.
    assert_eq!(links[0].remote_ca, ca_fingerprint(&ca_of(&s.west)));
    assert_eq!(
        links[0].access_token_url.as_deref(),
        Some(token.url.as_str())
    );

    // The same file again (kept around, as in Skupper's #2112): nothing to
    // redeem, the link it made is named.
    let err = s
        .east
        .create_link(bytes.as_bytes(), &LinkOptions::default(), s.now, &mut s.rng)
        .unwrap_err();
    assert!(
        matches!(&err, LinkError::AlreadyConnected { link, .. } if link == "link1"),
        "{err:?}"
    );
    assert_eq!(s.east.links().unwrap().len(), 1);
}

#[test]
fn status_counts_links_of_every_format_alike() {
    let mut s = sites();
    // West links to north by a 1.x claim, to east by a 2.x grant, to
    // south by a 2.x link file.
    let claim = s
        .north
        .create_claim_token(&TokenOptions::claim(), s.now, &mut s.rng)
        .unwrap();
    let created = s
        .west
        .create_link(
            claim.encode().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap();
    let r = created.redemption.unwrap();
    let cert = s.north.redeem_claim(&r.request, s.now, &mut s.rng);
    s.west
        .handle_redemption(
            &r,
            cert.map_err(|e| TransportError::Refused {
                status: e.http_status(),
                body: e.http_body(),
            }),
            s.now,
        )
        .unwrap();
    let (_, token) = s
        .east
        .issue_grant(&GrantOptions::new("to-west"), s.now, &mut s.rng)
        .unwrap();
    let created = s
        .west
        .create_link(
            token.encode().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap();
    let redeem = created.grant_redemption.unwrap();
    let reply = answer(&s.east, &redeem, s.now, &mut s.rng);
    s.west
        .handle_grant_redemption(&redeem, reply, s.now)
        .unwrap();
    let file = s
        .south
        .generate_link_file("to-west", 1, None, s.now, &mut s.rng)
        .unwrap();
    s.west
        .create_link(
            file.encode_generated().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap();

    let links = s.west.links().unwrap();
    let kinds: Vec<_> = links.iter().map(|l| l.token_kind()).collect();
    assert_eq!(kinds, ["cert token", "link file", "link file"]);
    for link in &links {
        let dial = s.west.dial_link(&link.name).unwrap();
        s.west.handle_dial(&dial, Ok(()), s.now).unwrap();
    }
    assert_eq!(
        s.west.status(s.now).unwrap().to_string(),
        "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 3 other sites."
    );
}

#[test]
fn a_link_record_from_before_schema_3_reads_and_learns_its_remote_ca() {
    let mut s = sites();
    let cert = s
        .west
        .create_cert_token(&TokenOptions::cert(), s.now, &mut s.rng)
        .unwrap();
    let link = s
        .east
        .add_link(
            cert.encode().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap();
    let mut old = serde_json::to_value(Record::Link(Box::new(link.clone()))).unwrap();
    old["schema-version"] = 2.into();
    old.as_object_mut().unwrap().remove("remote-ca");
    let read: Record = serde_json::from_value(old).unwrap();
    let Record::Link(read) = read else {
        panic!("not a link")
    };
    let read: LinkRecord = *read;
    assert_eq!(read.remote_ca, ca_fingerprint(&cert.ca_pem));
    assert_eq!(read, link);
    assert_eq!(read.remote_site_id, s.west.id());
}

#[test]
fn a_grant_response_fixture_reads_as_link_credentials() {
    // Skupper's own answer, as a link here keeps it.
    let body = include_bytes!("data/v2/v2-grant-response.yaml");
    let file = LinkFile::decode(body).unwrap();
    let link = LinkRecord::from_link(
        "link1".into(),
        1,
        &file.links[0],
        &file.secret,
        false,
        OffsetDateTime::UNIX_EPOCH,
    );
    assert_eq!(link.target(), "127.0.0.1:21462");
    assert_eq!(link.remote_site_id, ca_site_id(&file.secret.ca_pem));
    let credentials = link.cert_token().unwrap().unwrap();
    assert_eq!(credentials.edge.port, 21463);
    assert_eq!(credentials.key_pem, file.secret.key_pem);
}

#[test]
fn a_link_known_by_its_ca_learns_the_site_id_once() {
    let mut s = sites();
    let file = s
        .west
        .generate_link_file("to-east", 1, None, s.now, &mut s.rng)
        .unwrap();
    let mut link = s
        .east
        .add_link(
            file.encode_generated().as_bytes(),
            &LinkOptions::default(),
            s.now,
            &mut s.rng,
        )
        .unwrap();
    assert!(link.knows_site_by_ca());
    assert!(link.learn_site_id(s.west.id()));
    assert_eq!(link.remote_site_id, s.west.id());
    assert!(!link.knows_site_by_ca());
    assert_eq!(link.remote_ca, ca_fingerprint(&ca_of(&s.west)));
    // Known now: another id does not replace it.
    assert!(!link.learn_site_id(s.north.id()));
    assert_eq!(link.remote_site_id, s.west.id());
    // Still the same remote by id and by CA.
    assert!(link.same_remote(s.west.id(), "other"));
    assert!(link.same_remote("other", &ca_fingerprint(&ca_of(&s.west))));
}
