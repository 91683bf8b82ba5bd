//! The async redemption client on hyper against the claims endpoint on
//! hyper, over real TLS on 127.0.0.1: a redemption, refusals that are final
//! after one request, an unreachable server tried again, and a server whose
//! certificate is not from the token's CA.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::sync::Arc;
use std::time::Duration;

use skupper_token::claim::RedeemRequest;
use skupper_token::site::{Site, SiteConfig, TokenOptions};
use skupper_token::store::MemoryStore;
use skupper_token::token::{ClaimToken, Token};
use skupper_token::transport::TransportError;
use skupper_token_cli::https::{ClientOptions, SiteClaims};
use skupper_token_cli::os_random::OsRandom;
use skupper_token_cli::runtime::claims::{serve, ClaimsEndpoint, EndpointOptions, Shutdown};
use skupper_token_cli::runtime::redeem::RedeemClient;
use time::OffsetDateTime;
use tokio::net::TcpListener;

const EAST: &str = "5d3c8f0e-1a2b-4c3d-9e8f-0a1b2c3d4e5f";

struct West {
    site: Arc<Site<MemoryStore>>,
    stop: Shutdown,
}

async fn start_site() -> West {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let now = OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let site = Arc::new(
        Site::create(
            MemoryStore::new(),
            &SiteConfig::new("west")
                .hosts(["127.0.0.1"])
                .ports(port, 55671, 45671),
            now,
            &mut OsRandom::new(),
        )
        .unwrap(),
    );
    let endpoint = ClaimsEndpoint::new(
        Arc::new(SiteClaims::new(site.clone())),
        EndpointOptions::default(),
    );
    let (stop, watch) = Shutdown::new();
    tokio::spawn(serve(listener, endpoint, watch, Arc::new(|_: &_| {})));
    West { site, stop }
}

impl West {
    fn claim(&self, uses: u32) -> ClaimToken {
        match self
            .site
            .create_token(
                &TokenOptions::claim().uses(uses),
                OffsetDateTime::now_utc(),
                &mut OsRandom::new(),
            )
            .unwrap()
        {
            Token::Claim(c) => c,
            Token::Cert(_) => panic!("a claim token"),
        }
    }

    fn claim_record(&self, name: &str) -> skupper_token::claim::ClaimRecord {
        self.site
            .claims()
            .unwrap()
            .into_iter()
            .find(|c| c.name == name)
            .expect("the claim")
    }
}

fn request(claim: &ClaimToken, password: &str) -> RedeemRequest {
    RedeemRequest {
        claim: claim.name.clone(),
        password: password.as_bytes().to_vec(),
        site_id: EAST.into(),
        site_version: "1.9.6".into(),
    }
}

fn quick() -> ClientOptions {
    ClientOptions {
        retry_delays: vec![Duration::from_millis(10), Duration::from_millis(20)],
        ..ClientOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_is_redeemed_and_then_refused_for_good() {
    let west = start_site().await;
    let claim = west.claim(1);
    let client = RedeemClient::new(quick());
    let cert = client
        .redeem(
            &claim.url,
            &claim.ca_pem,
            &request(&claim, claim.password.expose()),
        )
        .await
        .expect("redeemed");
    assert_eq!(cert.issuer_site_id, west.site.id());
    assert_eq!(cert.name, EAST, "named after the requesting site");

    // Used up: 404, final after one request.
    let refused = client
        .redeem(
            &claim.url,
            &claim.ca_pem,
            &request(&claim, claim.password.expose()),
        )
        .await
        .unwrap_err();
    match &refused {
        TransportError::Refused { status: 404, body } => {
            assert!(body.starts_with("No such claim"), "{body}")
        }
        other => panic!("expected 404, got {other:?}"),
    }
    assert_eq!(
        west.claim_record(&claim.name).failed_attempts,
        1,
        "one request"
    );
    west.stop.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_403_after_one_request() {
    let west = start_site().await;
    let claim = west.claim(1);
    let refused = RedeemClient::new(quick())
        .redeem(
            &claim.url,
            &claim.ca_pem,
            &request(&claim, "not-the-password"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, TransportError::Refused { status: 403, .. }),
        "{refused:?}"
    );
    let record = west.claim_record(&claim.name);
    assert_eq!(record.failed_attempts, 1, "not retried");
    assert_eq!(record.uses_remaining, Some(1), "nothing spent");
    west.stop.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_tried_again_then_reported() {
    let west = start_site().await;
    let claim = west.claim(1);
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("https://127.0.0.1:{port}/{}", claim.name);
    let error = RedeemClient::new(quick())
        .redeem(
            &url,
            &claim.ca_pem,
            &request(&claim, claim.password.expose()),
        )
        .await
        .unwrap_err();
    match &error {
        TransportError::Unreachable { reason } => {
            assert!(reason.ends_with("(3 attempts)"), "{reason}")
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
    assert!(error.is_retryable());
    west.stop.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_certificate_is_not_from_the_token_ca_is_refused_at_once() {
    let west = start_site().await;
    let other = start_site().await;
    let claim = west.claim(1);
    // The token's CA is west's; the server at the URL is another site.
    let url = claim.url.replace(
        &format!(":{}/", west.site.record().unwrap().claims.port),
        &format!(":{}/", other.site.record().unwrap().claims.port),
    );
    let error = RedeemClient::new(quick())
        .redeem(
            &url,
            &claim.ca_pem,
            &request(&claim, claim.password.expose()),
        )
        .await
        .unwrap_err();
    match &error {
        TransportError::Handshake { reason } => assert!(
            reason.contains("is not from the CA in the token"),
            "{reason}"
        ),
        other => panic!("expected a handshake error, got {other:?}"),
    }
    assert!(!error.is_retryable());
    west.stop.shutdown();
    other.stop.shutdown();
}
