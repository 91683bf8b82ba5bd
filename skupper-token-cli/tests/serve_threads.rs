//! `serve` holds its links as tasks, not threads: with many sites linked to
//! it, its thread count stays within 16 (4 tokio workers, 8 blocking
//! threads for the store, the main thread and a few more), however many
//! links it holds.
//!
//! The linking sites run in this test process, on one tokio runtime, as an
//! application embedding several sites would.

// Tests start processes, use the clock and bind sockets.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stderr
)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Home;
use skupper_token::site::{LinkOptions, Site, SiteConfig, TokenOptions};
use skupper_token::store::MemoryStore;
use skupper_token::token::Token;
use skupper_token_cli::control::{self, Request, Response};
use skupper_token_cli::links::{LinkRuntime, RuntimeOptions};
use skupper_token_cli::os_random::OsRandom;
use skupper_token_cli::FileStore;
use time::OffsetDateTime;

/// More links than the thread budget, by far: a thread per link would
/// show.
const SITES: usize = 60;

/// The threads of process `pid`, from /proc.
fn threads(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads line")
}

/// How many incoming links the `serve` of `ns` holds, from its control
/// socket.
fn incoming(home: &Home, ns: &str) -> usize {
    match control::ask(&home.site_dir(ns), &Request::Live, Duration::from_secs(10)) {
        Ok(Some(Response::Live(live))) => live.incoming.len(),
        other => panic!("serve did not answer: {other:?}"),
    }
}

#[test]
fn serve_holds_many_links_within_sixteen_threads() {
    let home = Home::new();
    let claims_port = home.init("west");
    let serve = home.serve_with("west", claims_port, &["--links-max-per-address", "256"]);
    let before = threads(serve.pid());

    // Tokens from west (as another process, on the same directory).
    let west = Site::open(FileStore::open(home.site_dir("west")).unwrap()).unwrap();
    let now = OffsetDateTime::now_utc;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut linkers = Vec::new();
    for i in 0..SITES {
        let Token::Cert(token) = west
            .create_token(&TokenOptions::cert(), now(), &mut OsRandom::new())
            .unwrap()
        else {
            panic!("a cert token")
        };
        let site = Site::create(
            MemoryStore::new(),
            &SiteConfig::new(format!("site{i}")),
            now(),
            &mut OsRandom::new(),
        )
        .unwrap();
        site.add_link(
            token.encode().as_bytes(),
            &LinkOptions::default().name("link1"),
            now(),
            &mut OsRandom::new(),
        )
        .unwrap();
        let runtime = LinkRuntime::start_on(
            tokio.handle(),
            Arc::new(site),
            Vec::new(),
            RuntimeOptions::default(),
            |_| {},
        )
        .unwrap();
        linkers.push(runtime);
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let linked = incoming(&home, "west");
        if linked == SITES {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{linked} of {SITES} sites linked to serve"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let held = threads(serve.pid());
    eprintln!("serve: {before} threads before any link, {held} with {SITES} links");
    assert!(
        held <= 16,
        "serve runs {held} threads with {SITES} links ({before} before any link)"
    );

    tokio.block_on(async {
        for linker in &linkers {
            linker.shutdown().await;
        }
    });
    let (code, output) = serve.stop();
    assert_eq!(code, Some(0), "{output}");
}
