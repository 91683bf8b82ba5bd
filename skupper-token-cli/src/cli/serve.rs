//! `serve`: run the site until SIGINT or SIGTERM: its claims endpoint, its
//! live links (listeners and dialers), and the control socket other
//! commands ask for live state. It binds every address before anything
//! runs (a bind failure is exit code 6), and logs one line per event
//! through `tracing` (`--log-format text|json`), with repeats of one cause
//! (refused handshakes, wrong passwords, store errors retried) counted
//! rather than printed ([`super::log`]).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use skupper_token::duration::GoDuration;
use skupper_token::site::{Site, SiteMode};
use skupper_token_cli::control::{
    ControlServer, LiveIncoming, LiveLink, LiveState, Request, Response,
};
use skupper_token_cli::links::{LinkRuntime, PingError, Pong, RuntimeOptions, Snapshot};
use skupper_token_cli::runtime::claims::{
    self, ClaimService as _, ClaimsEndpoint, EndpointOptions, ServerEvent, Shutdown, SiteClaims,
};

use super::args::{Cli, ServeArgs};
use super::log::{self as site_log, Log};
use super::open_files::{self, OpenFiles};
use super::output::rfc3339;
use super::{is_shared, local_dir, open_site, site_locked, CliStore, CmdResult, Code, Failure};
use skupper_token_cli::site_lock::SiteLock;

fn std_duration(d: GoDuration) -> Duration {
    d.as_duration().try_into().unwrap_or(Duration::MAX)
}

/// Worker threads of `serve`'s tokio runtime: one per core, at most 4.
const MAX_WORKER_THREADS: usize = 4;
/// Threads for blocking store calls (a file store's fsyncs), so that a slow
/// disk never stalls a worker: with the workers and the main thread, `serve`
/// stays within 16 threads however many links it holds.
const BLOCKING_THREADS: usize = 8;

/// The one tokio runtime everything in `serve` runs on: the claims
/// endpoint, the links and the control socket.
fn tokio_runtime() -> CmdResult<tokio::runtime::Runtime> {
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, MAX_WORKER_THREADS);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_name("serve")
        .enable_all()
        .build()
        .map_err(|e| Failure::new(Code::CannotListen, e).context("cannot start the async runtime"))
}

/// A listener, bound now: every bind failure is exit code 6.
fn bind(what: &str, addr: SocketAddr) -> CmdResult<TcpListener> {
    skupper_token_cli::listen::listen(addr).map_err(|e| {
        Failure::new(Code::CannotListen, e)
            .context(format!("cannot listen for {what} on {addr}"))
            .hint("another 'serve' or program may hold the port: stop it, or choose another address (see 'serve --help' for the --*-listen options)")
    })
}

/// The claims server's and the link runtime's options from `serve`'s
/// arguments.
fn options(args: &ServeArgs) -> (EndpointOptions, RuntimeOptions) {
    let claims = EndpointOptions {
        max_connections: args.claims_max_connections,
        max_pending_per_address: args.claims_max_per_address,
        handshake_timeout: std_duration(args.claims_handshake_timeout),
        head_timeout: std_duration(args.claims_head_timeout),
        ..EndpointOptions::default()
    };
    let links = RuntimeOptions {
        inter_router_listen: args.inter_router_listen,
        edge_listen: args.edge_listen,
        max_connections: args.links_max_connections,
        max_pending_per_address: args.links_max_per_address,
        incoming_handshake_timeout: std_duration(args.links_handshake_timeout),
        ..RuntimeOptions::default()
    };

    (claims, links)
}

/// Runs the site until the process is asked to stop.
pub(crate) fn run(cli: &Cli, args: &ServeArgs) -> CmdResult {
    // Before any socket is open: every link is one.
    let open_files = open_files::raise_to_hard_limit();
    let site = open_site(cli)?;
    let dir = local_dir(cli)?;
    // Replicas of a site in etcd each hold their own incoming links: a
    // holder name per replica (this machine and directory), so that one
    // replica does not clear another's records as left over from a crash.
    // The same replica started again takes over what it left.
    let site = match is_shared(cli)? {
        true => site.with_incoming_holder(replica_name(&dir)),
        false => site,
    };
    let site = Arc::new(site);
    // Held until this function returns (or the process ends): no second
    // `serve`, and no `init --force` replacing the site under this one.
    // A second `serve` is refused as a listener that cannot bind (exit 6):
    // the first one holds the site's ports.
    let _lock = SiteLock::acquire(&dir, "serve").map_err(|e| {
        let failure = site_locked(e, format!("cannot serve namespace {:?}", cli.namespace), "");
        match failure.code() {
            Code::Refused => failure.with_code(Code::CannotListen),
            _ => failure,
        }
    })?;
    let record = site.record()?;

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).map_err(|e| {
            Failure::new(Code::CannotListen, e).context("cannot install the signal handlers")
        })?;
    }

    let (claims_options, link_options) = options(args);
    let rt = tokio_runtime()?;

    // Every address first, so that any bind failure is reported as one
    // before anything runs.
    let claims_listener = match record.mode {
        SiteMode::Edge => None,
        SiteMode::Interior => {
            let addr = args.claims_listen.unwrap_or(SocketAddr::from((
                Ipv4Addr::UNSPECIFIED,
                record.claims.port,
            )));
            Some(bind("claim redemptions", addr)?)
        }
    };
    let mut link_listeners = Vec::new();
    for (kind, addr) in link_options.listen_addrs(&record) {
        link_listeners.push((kind, bind(&format!("{kind} links"), addr)?));
    }

    site_log::install(args.log_format);
    if let OpenFiles::NotRaised(why) = open_files {
        tracing::warn!(target: site_log::TARGET, "{why}");
    }
    let log = Arc::new(Log::new());

    // Claims (interior sites only: an edge site issues no tokens), on the
    // runtime.
    let claims = match claims_listener {
        None => None,
        Some(listener) => Some(start_claims(&rt, listener, &site, claims_options, &log)?),
    };

    // Live links, on the runtime.
    let runtime = {
        let log = log.clone();
        LinkRuntime::start_on(
            rt.handle(),
            site.clone(),
            link_listeners,
            link_options,
            move |event| log.event(event.cause(), event),
        )
        .map_err(|e| Failure::new(Code::CannotListen, e).context("cannot start the site's links"))?
    };
    let runtime = Arc::new(runtime);
    // On etcd, a change of the site record made anywhere (a revoke-access
    // on another machine) is followed at once, not only at the next poll.
    let _site_watch = watch_site(cli, &rt, &runtime)?;

    // The control socket, on the runtime.
    let control = {
        let runtime = runtime.clone();
        ControlServer::start(rt.handle(), &dir, move |request| {
            answer(runtime.clone(), request)
        })
        .map_err(|e| {
            Failure::new(Code::CannotListen, e).context("cannot open the control socket")
        })?
    };

    let listening: Vec<String> = runtime
        .listen_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    match &claims {
        Some((claims_addr, _, _)) => eprintln!(
            "Site {:?} (namespace {:?}, interior) is running: claims at https://{} (advertised as https://{}), links on {}. Press Ctrl-C to stop.",
            record.name,
            record.namespace,
            claims_addr,
            record.claims,
            listening.join(" and ")
        ),
        None => eprintln!(
            "Site {:?} (namespace {:?}, edge) is running: it dials its links and accepts none. Press Ctrl-C to stop.",
            record.name, record.namespace
        ),
    }

    rt.block_on(async {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            log.tick();
        }
    });
    eprintln!("Stopping...");
    control.shutdown();
    if let Some((_, stop, server)) = claims {
        // Answers in progress finish; serve returns within its grace.
        stop.shutdown();
        let _ = rt.block_on(server);
    }
    rt.block_on(runtime.shutdown());
    log.finish();
    eprintln!("Stopped.");
    Ok(())
}

/// A watch of the site record in etcd that makes the links runtime read
/// the site again at each change; none for a site in files.
#[cfg(feature = "etcd")]
fn watch_site(
    cli: &Cli,
    rt: &tokio::runtime::Runtime,
    runtime: &Arc<LinkRuntime>,
) -> CmdResult<Option<skupper_token_cli::etcd_store::EtcdWatch>> {
    let super::SiteStore::Etcd(url) = super::site_store(cli)? else {
        return Ok(None);
    };
    let store = skupper_token_cli::etcd_store::EtcdStore::open(&url)?;
    let handle = rt.handle().clone();
    let runtime = runtime.clone();
    // One reload at a time is asked for: changes while one waits to start
    // are read by it.
    let pending = Arc::new(AtomicBool::new(false));
    let watch = store.watch(&skupper_token::store::Key::site(), move || {
        if pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let (runtime, pending) = (runtime.clone(), pending.clone());
        // The callback runs on the store's thread: the reload on serve's
        // runtime (it reads the store on the blocking pool).
        handle.spawn(async move {
            pending.store(false, Ordering::Release);
            runtime.reload().await;
        });
    })?;
    Ok(Some(watch))
}

/// Without the etcd store there is nothing to watch.
#[cfg(not(feature = "etcd"))]
fn watch_site(
    _cli: &Cli,
    _rt: &tokio::runtime::Runtime,
    _runtime: &Arc<LinkRuntime>,
) -> CmdResult<Option<()>> {
    Ok(None)
}

/// The name of this replica of a site: the machine's host name and the
/// namespace's local directory (one `serve` at a time holds its lock).
fn replica_name(dir: &std::path::Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", dir.display())
}

/// The claims server, running on `rt`: its address, its stop handle and
/// its task.
type ClaimsServer = (SocketAddr, Shutdown, tokio::task::JoinHandle<()>);

/// Starts the claims server on `rt` over the listener bound at startup.
fn start_claims(
    rt: &tokio::runtime::Runtime,
    listener: TcpListener,
    site: &Arc<Site<CliStore>>,
    options: EndpointOptions,
    log: &Arc<Log>,
) -> CmdResult<ClaimsServer> {
    let cannot =
        |e: std::io::Error| Failure::new(Code::CannotListen, e).context("cannot serve claims");
    let service = Arc::new(SiteClaims::new(site.clone()));
    // A site that cannot present a certificate says why at once.
    service
        .server_certificate()
        .map_err(|e| cannot(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
    let addr = listener.local_addr().map_err(cannot)?;
    let listener = {
        let _runtime = rt.enter();
        listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(listener))
            .map_err(cannot)?
    };
    let (stop, watch) = Shutdown::new();
    let on_event = {
        let log = log.clone();
        Arc::new(move |event: &ServerEvent| log.event(event.cause(), event))
    };
    let endpoint = ClaimsEndpoint::new(service, options);
    let task = rt.spawn(claims::serve(listener, endpoint, watch, on_event));
    Ok((addr, stop, task))
}

async fn answer(runtime: Arc<LinkRuntime>, request: Request) -> Response {
    match request {
        // The snapshot reads the store: on the blocking pool.
        Request::Live => match tokio::task::spawn_blocking(move || runtime.snapshot()).await {
            Ok(snapshot) => Response::Live(live_state(&snapshot)),
            Err(e) => Response::Error {
                message: format!("the live state could not be read: {e}"),
            },
        },
        Request::Reload => {
            runtime.reload().await;
            Response::Ok
        }
        Request::PingLink { link, timeout_ms } => pong(
            runtime
                .ping_link(&link, Duration::from_millis(timeout_ms))
                .await,
        ),
        Request::PingSite { site, timeout_ms } => pong(
            runtime
                .ping_site(&site, Duration::from_millis(timeout_ms))
                .await,
        ),
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

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::super::args::{Cli, Command};
    use super::*;

    fn serve_args(extra: &[&str]) -> ServeArgs {
        let cli = Cli::try_parse_from(["skupper-token", "serve"].iter().chain(extra))
            .expect("valid arguments");
        match cli.command {
            Command::Serve(args) => args,
            other => panic!("not serve: {other:?}"),
        }
    }

    #[test]
    fn every_limit_option_reaches_the_servers() {
        let (claims, links) = options(&serve_args(&[
            "--claims-max-connections",
            "7",
            "--claims-max-per-address",
            "3",
            "--claims-handshake-timeout",
            "1500ms",
            "--claims-head-timeout",
            "4s",
            "--links-max-connections",
            "9",
            "--links-max-per-address",
            "5",
            "--links-handshake-timeout",
            "2s",
            "--inter-router-listen",
            "127.0.0.1:1234",
            "--edge-listen",
            "127.0.0.1:1235",
        ]));
        assert_eq!(claims.max_connections, 7);
        assert_eq!(claims.max_pending_per_address, 3);
        assert_eq!(claims.handshake_timeout, Duration::from_millis(1500));
        assert_eq!(claims.head_timeout, Duration::from_secs(4));
        assert_eq!(links.max_connections, 9);
        assert_eq!(links.max_pending_per_address, 5);
        assert_eq!(links.incoming_handshake_timeout, Duration::from_secs(2));
        assert_eq!(
            links.inter_router_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 1234)))
        );
        assert_eq!(
            links.edge_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 1235)))
        );
    }

    #[test]
    fn without_options_the_defaults_hold() {
        let (claims, links) = options(&serve_args(&[]));
        assert_eq!(claims, EndpointOptions::default());
        assert_eq!(links, RuntimeOptions::default());
    }
}
