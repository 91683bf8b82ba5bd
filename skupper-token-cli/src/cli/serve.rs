//! `serve`: run the site's claims endpoint until SIGINT or SIGTERM.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use skupper_token::site::SiteMode;
use skupper_token_cli::https::ClaimsServer;

use super::args::{Cli, ServeArgs};
use super::output::rfc3339;
use super::{open_site, CmdResult, Code, Failure};

/// Runs the claims server until the process is asked to stop.
pub(crate) fn run(cli: &Cli, args: &ServeArgs) -> CmdResult {
    let site = Arc::new(open_site(cli)?);
    let record = site.record()?;
    if record.mode == SiteMode::Edge {
        return Err(Failure::new(
            Code::Refused,
            "Edge configuration cannot accept connections: an edge site serves no claims",
        ));
    }
    let addr = args.claims_listen.unwrap_or(SocketAddr::from((
        Ipv4Addr::UNSPECIFIED,
        record.claims.port,
    )));

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).map_err(|e| {
            Failure::new(Code::Refused, e).context("cannot install the signal handlers")
        })?;
    }

    let server = ClaimsServer::for_site(site.clone(), addr, |event| {
        println!("{} {event}", rfc3339(time::OffsetDateTime::now_utc()));
    })
    .map_err(|e| {
        Failure::new(Code::Network, e).context(format!("cannot serve claims on {addr}"))
    })?;
    eprintln!(
        "Site {:?} (namespace {:?}) is serving claims at https://{} (advertised as https://{}). Press Ctrl-C to stop.",
        record.name,
        record.namespace,
        server.local_addr(),
        record.claims
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("Stopping...");
    server.shutdown();
    eprintln!("Stopped.");
    Ok(())
}
