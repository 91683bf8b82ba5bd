//! Mounting a site's claims endpoint in an application's own axum server.
//!
//! A tokio application that already runs an HTTPS server (an operator, an
//! API) serves claim redemptions from it: `ClaimsEndpoint` is a tower
//! service, so it is one `route_service` line. This example makes a site in
//! memory, serves its claims from axum over the site's own TLS certificate
//! on 127.0.0.1, and redeems a claim token against it with this crate's
//! client, as a linking site would.
//!
//! Run it with `cargo run -p skupper-token-cli --example claims_in_axum`.
#![allow(clippy::print_stdout, clippy::disallowed_methods)]

use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use skupper_token::claim::RedeemRequest;
use skupper_token::site::{Site, SiteConfig, TokenOptions};
use skupper_token::store::MemoryStore;
use skupper_token::token::Token;
use skupper_token_cli::https::SiteClaims;
use skupper_token_cli::os_random::OsRandom;
use skupper_token_cli::runtime::claims::{ClaimsEndpoint, EndpointOptions};
use skupper_token_cli::runtime::redeem::RedeemClient;
use time::OffsetDateTime;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // The application's listener; the site advertises its port in tokens.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let site = Arc::new(Site::create(
        MemoryStore::new(),
        &SiteConfig::new("west")
            .hosts(["127.0.0.1"])
            .ports(port, 55671, 45671),
        OffsetDateTime::now_utc(),
        &mut OsRandom::new(),
    )?);

    // The claims endpoint, mounted where Skupper clients POST: /<claim>.
    let claims = ClaimsEndpoint::new(
        Arc::new(SiteClaims::new(site.clone())),
        EndpointOptions::default(),
    );
    let app = Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route_service("/{claim}", claims);

    // The application terminates TLS with the site's server certificate
    // (claim tokens carry the site CA, and clients trust only it).
    let (_ca, server) = site.server_credentials()?.ok_or("an interior site")?;
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])?
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(server.cert_der.clone())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server.key.pkcs8_der().to_vec())),
    )?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
                    .await;
            });
        }
    });

    // A linking site redeems a claim token against it.
    let Token::Claim(claim) = site.create_token(
        &TokenOptions::claim(),
        OffsetDateTime::now_utc(),
        &mut OsRandom::new(),
    )?
    else {
        return Err("expected a claim token".into());
    };
    let request = RedeemRequest {
        claim: claim.name.clone(),
        password: claim.password.expose().as_bytes().to_vec(),
        site_id: "5d3c8f0e-1a2b-4c3d-9e8f-0a1b2c3d4e5f".into(),
        site_version: "1.9.6".into(),
    };
    let cert = RedeemClient::default()
        .redeem(&claim.url, &claim.ca_pem, &request)
        .await?;
    println!(
        "claim {} redeemed through axum: cert token {:?} from site {}",
        claim.name, cert.name, cert.issuer_site_id
    );
    Ok(())
}

/// `cargo test` runs the example (see `[[example]]` in Cargo.toml).
#[test]
fn the_example_runs() {
    main().expect("the example runs");
}
