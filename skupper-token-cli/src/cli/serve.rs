//! `serve`: run the site until SIGINT or SIGTERM: its claims endpoint, its
//! live links (listeners and dialers), and the control socket other
//! commands ask for live state.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use skupper_token::site::SiteMode;
use skupper_token_cli::control::{
    ControlServer, LiveIncoming, LiveLink, LiveState, Request, Response,
};
use skupper_token_cli::https::ClaimsServer;
use skupper_token_cli::links::{LinkRuntime, PingError, Pong, RuntimeOptions, Snapshot};

use super::args::{Cli, ServeArgs};
use super::output::rfc3339;
use super::{open_site, site_dir, site_locked, CmdResult, Code, Failure};
use skupper_token_cli::site_lock::SiteLock;

fn log(line: impl std::fmt::Display) {
    println!("{} {line}", rfc3339(time::OffsetDateTime::now_utc()));
}

/// Runs the site until the process is asked to stop.
pub(crate) fn run(cli: &Cli, args: &ServeArgs) -> CmdResult {
    let site = Arc::new(open_site(cli)?);
    let dir = site_dir(cli)?;
    // Held until this function returns (or the process ends): no second
    // `serve`, and no `init --force` replacing the site under this one.
    let _lock = SiteLock::acquire(&dir, "serve")
        .map_err(|e| site_locked(e, format!("cannot serve namespace {:?}", cli.namespace), ""))?;
    let record = site.record()?;

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).map_err(|e| {
            Failure::new(Code::Refused, e).context("cannot install the signal handlers")
        })?;
    }

    // Claims (interior sites only: an edge site issues no tokens).
    let claims = match record.mode {
        SiteMode::Edge => None,
        SiteMode::Interior => {
            let addr = args.claims_listen.unwrap_or(SocketAddr::from((
                Ipv4Addr::UNSPECIFIED,
                record.claims.port,
            )));
            let server =
                ClaimsServer::for_site(site.clone(), addr, |event| log(event)).map_err(|e| {
                    Failure::new(Code::Network, e).context(format!("cannot serve claims on {addr}"))
                })?;
            Some(server)
        }
    };

    // Live links.
    let runtime =
        LinkRuntime::start(site.clone(), RuntimeOptions::default(), |event| log(event))
            .map_err(|e| Failure::new(Code::Network, e).context("cannot start the site's links"))?;
    let runtime = Arc::new(runtime);

    // The control socket.
    let control = {
        let runtime = runtime.clone();
        ControlServer::start(&dir, move |request| answer(&runtime, request))
            .map_err(|e| Failure::new(Code::Refused, e).context("cannot open the control socket"))?
    };

    let listening: Vec<String> = runtime
        .listen_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    match &claims {
        Some(server) => eprintln!(
            "Site {:?} (namespace {:?}, interior) is running: claims at https://{} (advertised as https://{}), links on {}. Press Ctrl-C to stop.",
            record.name,
            record.namespace,
            server.local_addr(),
            record.claims,
            listening.join(" and ")
        ),
        None => eprintln!(
            "Site {:?} (namespace {:?}, edge) is running: it dials its links and accepts none. Press Ctrl-C to stop.",
            record.name, record.namespace
        ),
    }

    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("Stopping...");
    control.shutdown();
    if let Some(server) = claims {
        server.shutdown();
    }
    match Arc::try_unwrap(runtime) {
        Ok(runtime) => runtime.shutdown(),
        Err(runtime) => drop(runtime),
    }
    eprintln!("Stopped.");
    Ok(())
}

fn answer(runtime: &LinkRuntime, request: Request) -> Response {
    match request {
        Request::Live => Response::Live(live_state(&runtime.snapshot())),
        Request::Reload => {
            runtime.reload();
            Response::Ok
        }
        Request::PingLink { link, timeout_ms } => {
            pong(runtime.ping_link(&link, Duration::from_millis(timeout_ms)))
        }
        Request::PingSite { site, timeout_ms } => {
            pong(runtime.ping_site(&site, Duration::from_millis(timeout_ms)))
        }
    }
}

fn pong(result: Result<Pong, PingError>) -> Response {
    match result {
        Ok(pong) => Response::Pong {
            rtt_us: pong.rtt.as_micros().try_into().unwrap_or(u64::MAX),
            over: Some(pong.path),
        },
        Err(e) => Response::Error {
            message: e.to_string(),
        },
    }
}

fn live_state(s: &Snapshot) -> LiveState {
    LiveState {
        pid: std::process::id(),
        outgoing: s
            .outgoing
            .iter()
            .map(|o| LiveLink {
                name: o.name.clone(),
                remote_site_id: o.remote_site_id.clone(),
                remote_site_name: o.remote_site_name.clone(),
                target: o.target.clone(),
                connected: o.connected,
                since: o.since.map(rfc3339),
                reason: o.reason.clone(),
                revoked: o.revoked,
            })
            .collect(),
        incoming: s
            .incoming
            .iter()
            .map(|i| LiveIncoming {
                site_id: i.peer_site_id.clone(),
                site_name: i.peer_site_name.clone(),
                link: i.link.clone(),
                since: rfc3339(i.since),
                common_name: i.certificate_cn.clone(),
            })
            .collect(),
    }
}
