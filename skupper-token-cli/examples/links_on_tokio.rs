//! Running sites' live links on an application's own tokio runtime.
//!
//! A tokio application (an operator, a service that embeds a site) runs
//! its site's links as tasks on the runtime it already has: no thread per
//! link, no second runtime. This example makes two sites in memory, west
//! (interior, listening on 127.0.0.1) and east, gives east a link made
//! from a token west issued, runs both sites' `LinkRuntime`s on this
//! program's runtime, waits until the link is connected, prints both
//! sides' state, pings over the link and stops.
//!
//! Run it with `cargo run -p skupper-token-cli --example links_on_tokio`.
#![allow(
    clippy::print_stdout,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use skupper_token::site::{LinkOptions, Site, SiteConfig, SiteMode, TokenOptions};
use skupper_token::store::MemoryStore;
use skupper_token::token::Token;
use skupper_token_cli::links::{LinkRuntime, ListenerKind, RuntimeOptions};
use skupper_token_cli::os_random::OsRandom;
use time::OffsetDateTime;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let now = OffsetDateTime::now_utc;
    // West's link ports, bound first so that its tokens carry them.
    let inter_router = TcpListener::bind("127.0.0.1:0")?;
    let edge = TcpListener::bind("127.0.0.1:0")?;
    let west = Arc::new(Site::create(
        MemoryStore::new(),
        &SiteConfig::new("west").hosts(["127.0.0.1"]).ports(
            8081,
            inter_router.local_addr()?.port(),
            edge.local_addr()?.port(),
        ),
        now(),
        &mut OsRandom::new(),
    )?);
    let east = Arc::new(Site::create(
        MemoryStore::new(),
        &SiteConfig::new("east").mode(SiteMode::Interior),
        now(),
        &mut OsRandom::new(),
    )?);

    // East links to west with a token from west.
    let Token::Cert(token) =
        west.create_token(&TokenOptions::cert(), now(), &mut OsRandom::new())?
    else {
        return Err("west issued another kind of token".into());
    };
    east.add_link(
        token.encode().as_bytes(),
        &LinkOptions::default().name("link1"),
        now(),
        &mut OsRandom::new(),
    )?;

    // Both sites' links, as tasks on this program's runtime.
    let handle = tokio::runtime::Handle::current();
    let log = |site: &'static str| move |event: &_| println!("{site}: {event}");
    let west_links = LinkRuntime::start_on(
        &handle,
        west.clone(),
        vec![
            (ListenerKind::InterRouter, inter_router),
            (ListenerKind::Edge, edge),
        ],
        RuntimeOptions::default(),
        log("west"),
    )?;
    // East listens nowhere in this example: it only dials.
    let east_links = LinkRuntime::start_on(
        &handle,
        east.clone(),
        Vec::new(),
        RuntimeOptions::default(),
        log("east"),
    )?;

    // Wait until the link is up on both sides. A snapshot reads the
    // store: off the runtime's workers.
    let (east_links, west_links) = (Arc::new(east_links), Arc::new(west_links));
    let connected = async {
        loop {
            let (e, w) = (east_links.clone(), west_links.clone());
            let (east_state, west_state) =
                tokio::task::spawn_blocking(move || (e.snapshot(), w.snapshot())).await?;
            if east_state.outgoing.iter().any(|l| l.connected) && !west_state.incoming.is_empty() {
                return Ok::<_, Error>((east_state, west_state));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (east_state, west_state) = tokio::time::timeout(Duration::from_secs(30), connected)
        .await
        .map_err(|_| "the link did not connect within 30s")??;
    for link in &east_state.outgoing {
        println!(
            "east: link {} to site {} connected: {} (since {:?})",
            link.name,
            link.remote_site_name
                .as_deref()
                .unwrap_or(&link.remote_site_id),
            link.connected,
            link.since
        );
    }
    for link in &west_state.incoming {
        println!(
            "west: incoming link {} from site {} ({}), certificate CN={}",
            link.link, link.peer_site_name, link.remote_addr, link.certificate_cn
        );
    }
    let pong = east_links
        .ping_link("link1", Duration::from_secs(5))
        .await?;
    println!("east: ping over {}: {:?}", pong.path, pong.rtt);

    east_links.shutdown().await;
    west_links.shutdown().await;
    Ok(())
}

#[test]
fn the_example_runs() {
    main().expect("the example runs");
}
