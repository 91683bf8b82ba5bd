//! `link create|status|ping|delete`.

use std::path::Path;

use skupper_token::link::{LinkRecord, LinkState, LinkStatus};
use skupper_token::link_ops::{GrantRedeem, Redemption};
use skupper_token::site::{LinkError, LinkOptions, Site};
use skupper_token::token::{CertToken, Token, TokenFile};
use skupper_token::transport::TransportError;

use super::{
    decode_token_file, live, not_running, notify_running, now, print_report, read_token_file,
};
use crate::cli::args::{Cli, LinkCreateArgs, LinkPingArgs};
use crate::cli::output::print;
use crate::cli::progress::Progress;
use crate::cli::schema::{
    IncomingLink, LinkCreated, LinkDeleted, LinkStatusAll, LinkStatusOne, OutgoingLink, Ping,
    UnreadableRecord, Wait, WaitOutcome,
};
use crate::cli::{open_site, site_dir, CliStore, CmdResult, Code, Failure};
use skupper_token_cli::control::{self, LiveState, Request, Response};
use skupper_token_cli::https::ClaimUrl;
use skupper_token_cli::links::{Direction, PingPath};
use skupper_token_cli::os_random::OsRandom;
use skupper_token_cli::runtime::redeem::RedeemClient;

type CliSite = Site<CliStore>;

pub(super) fn link_create(cli: &Cli, args: &LinkCreateArgs) -> CmdResult {
    let file = &args.file;
    let bytes = read_token_file(file)?;
    let token = decode_token_file(file, &bytes)?;
    let mut options = LinkOptions::default().cost(args.cost);
    options.name = args.name.clone();
    create(cli, file, &bytes, &token, &options, args.replace)
}

/// Links this site with the token file `token` (`bytes` as read from
/// `file`): every format, a claim or an AccessToken redeemed first
/// (`link create`, `token redeem`).
pub(super) fn create(
    cli: &Cli,
    file: &Path,
    bytes: &[u8],
    token: &TokenFile,
    options: &LinkOptions,
    replace: bool,
) -> CmdResult {
    let site = open_site(cli)?;
    let mut replaced = None;
    // The core's one rule: a link whose claim or AccessToken is not
    // redeemed is deleted again (by handle_redemption,
    // handle_grant_redemption), so nothing half-made stays behind.
    let created = match site.create_link(bytes, options, now(), &mut OsRandom::new()) {
        Err(LinkError::AlreadyConnected { link, .. }) if replace => {
            site.delete_link(&link)?;
            eprintln!("Link '{link}' has been removed (--replace)");
            replaced = Some(link);
            site.create_link(bytes, options, now(), &mut OsRandom::new())?
        }
        Err(e @ LinkError::AlreadyConnected { .. }) => {
            return Err(already_connected(cli, file, e));
        }
        other => other?,
    };
    let link = match (&created.redemption, &created.grant_redemption) {
        (Some(redemption), _) => {
            let answer = redeem(redemption);
            site.handle_redemption(redemption, answer, now())?
        }
        (None, Some(redeem)) => {
            let answer = redeem_grant(redeem);
            let mut links = site.handle_grant_redemption(redeem, answer, now())?;
            links.remove(0)
        }
        (None, None) => created.link,
    };
    // As Skupper says it: the claim URL for a claim token or an
    // AccessToken, the endpoint for a cert token or a Link file.
    let target = match token {
        TokenFile::V1(Token::Claim(claim)) => claim.url.clone(),
        TokenFile::AccessToken(access) => access.url.clone(),
        _ => link.target().to_owned(),
    };
    notify_running(cli);
    let text = format!(
        "Site configured to link to {target} (name={})\nCheck the status of the link using 'skupper-token link status'.",
        link.name
    );
    let created = LinkCreated {
        name: link.name.clone(),
        remote_site_id: link.remote_site_id.clone(),
        target: link.target().to_owned(),
        cost: link.cost,
        state: link.state().label(),
        replaced,
    };
    print(cli.output, &text, &created)
}

/// A runtime of this command's own for one redemption.
fn client_runtime() -> Result<tokio::runtime::Runtime, TransportError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TransportError::Unreachable {
            reason: format!("cannot start the network client: {e}"),
        })
}

/// Redeems a claim over HTTPS (the hyper client, on a runtime of this
/// command's own), with a spinner on a terminal. The client retries an
/// unreachable, busy or failing server; a refusal is final after one
/// request.
fn redeem(redemption: &Redemption) -> Result<CertToken, TransportError> {
    let runtime = client_runtime()?;
    // One short line (a long one wraps, and a wrapped spinner is not
    // cleared cleanly): the server's address, not the whole URL.
    let server =
        ClaimUrl::parse(&redemption.url).map_or_else(|_| redemption.url.clone(), |u| u.to_string());
    let _progress = Progress::start(format!("redeeming the claim at {server}"));
    runtime.block_on(RedeemClient::default().redeem(
        &redemption.url,
        &redemption.ca_pem,
        &redemption.request,
    ))
}

/// Redeems a Skupper 2.x AccessToken at its grant server, as [`redeem`]
/// does a claim: the status and body go to the core, which reads them.
fn redeem_grant(redeem: &GrantRedeem) -> Result<(u16, Vec<u8>), TransportError> {
    let runtime = client_runtime()?;
    let url = &redeem.request.url;
    let server = ClaimUrl::parse(url).map_or_else(|_| url.clone(), |u| u.to_string());
    let _progress = Progress::start(format!("redeeming the AccessToken at {server}"));
    runtime.block_on(RedeemClient::default().redeem_grant(&redeem.request))
}

/// `Already connected`, with the two ways out: replace the existing link
/// with the new token, or delete it.
fn already_connected(cli: &Cli, file: &std::path::Path, e: LinkError) -> Failure {
    let link = match &e {
        LinkError::AlreadyConnected { link, .. } => link.clone(),
        _ => "NAME".to_owned(),
    };
    let ns = &cli.namespace;
    Failure::from(e).hint(format!(
        "If that link no longer works (for example the site revoked access), replace it with this token: 'skupper-token -n {ns} link create {} --replace', or remove it first: 'skupper-token -n {ns} link delete {link}'.",
        file.display()
    ))
}

/// One outgoing link as the user sees it: its record, and its live state
/// when the site runs.
fn outgoing_link(cli: &Cli, link: &LinkRecord, live: Option<&LiveState>) -> OutgoingLink {
    let on_live = live.and_then(|l| l.outgoing.iter().find(|o| o.name == link.name));
    // (connected, reason, whether it can still connect by itself)
    let (connected, reason, will_connect) = match (link.state().will_not_connect(), on_live) {
        // The core says what happened; the command to run is the CLI's.
        (Some(why), _) if matches!(link.state(), LinkState::Revoked { .. }) => (
            false,
            Some(format!(
                "{why}: 'skupper-token -n {} link create FILE --replace'",
                cli.namespace
            )),
            false,
        ),
        (Some(why), _) => (false, Some(why), false),
        (None, Some(o)) if o.connected => (true, None, true),
        (None, Some(o)) => (false, o.reason.clone(), !o.revoked),
        (None, None) if live.is_some() => (
            false,
            Some("the running site has not picked it up yet".to_owned()),
            true,
        ),
        (None, None) => (false, Some(not_running(cli)), false),
    };
    let status = LinkStatus {
        name: link.name.clone(),
        connected,
        reason: reason.clone(),
        since: None,
    };
    OutgoingLink {
        name: link.name.clone(),
        connected,
        will_connect,
        status: status.to_string(),
        reason,
        state: link.state().label(),
        remote_site_id: link.remote_site_id.clone(),
        remote_site_name: on_live
            .and_then(|o| o.remote_site_name.clone())
            .or_else(|| match link.state() {
                // The site that revoked access named itself in its notice.
                LinkState::Revoked { by, .. } => Some(by.name.clone()),
                _ => None,
            }),
        target: link.target().to_owned(),
        cost: link.cost,
        since: on_live
            .filter(|o| o.connected)
            .and_then(|o| o.since.clone()),
    }
}

fn incoming_links(live: Option<&LiveState>) -> Vec<IncomingLink> {
    live.map(|l| {
        l.incoming
            .iter()
            .map(|i| IncomingLink {
                remote_site_id: i.site_id.clone(),
                remote_site_name: i.site_name.clone(),
                link: i.link.clone(),
                since: i.since.clone(),
                common_name: i.common_name.clone(),
            })
            .collect()
    })
    .unwrap_or_default()
}

/// What `link status [NAME]` prints, as text and as an object.
enum Report {
    One(LinkStatusOne),
    All(LinkStatusAll),
}

impl Report {
    fn make(cli: &Cli, site: &CliSite, name: Option<&str>) -> CmdResult<Report> {
        let live = live(cli)?;
        Ok(match name {
            Some(name) => Report::One(LinkStatusOne {
                link: outgoing_link(cli, &site.link(name)?, live.as_ref()),
                site_running: live.is_some(),
                wait: None,
            }),
            None => {
                let listing = site.links_listing()?;
                Report::All(LinkStatusAll {
                    site_running: live.is_some(),
                    outgoing: listing
                        .records
                        .iter()
                        .map(|l| outgoing_link(cli, l, live.as_ref()))
                        .collect(),
                    incoming: incoming_links(live.as_ref()),
                    unreadable: listing
                        .unreadable
                        .iter()
                        .map(|u| UnreadableRecord {
                            name: u.key.name.clone(),
                            error: u.error.to_string(),
                        })
                        .collect(),
                    wait: None,
                })
            }
        })
    }

    fn outgoing(&self) -> &[OutgoingLink] {
        match self {
            Report::One(one) => std::slice::from_ref(&one.link),
            Report::All(all) => &all.outgoing,
        }
    }

    fn set_wait(&mut self, wait: Wait) {
        match self {
            Report::One(one) => one.wait = Some(wait),
            Report::All(all) => all.wait = Some(wait),
        }
    }

    fn text(&self, cli: &Cli) -> String {
        let all = match self {
            Report::One(one) => return one.link.status.clone(),
            Report::All(all) => all,
        };
        let mut text = String::from("Links created from this site:\n");
        if all.outgoing.is_empty() && all.unreadable.is_empty() {
            text.push_str("  There are no links configured or connected\n");
        }
        for l in &all.outgoing {
            text.push_str(&format!("  {}\n", l.status));
        }
        for u in &all.unreadable {
            text.push_str(&format!(
                "  Link {} cannot be read: its record is corrupt\n",
                u.name
            ));
        }
        text.push_str("Current links from other sites that are connected:\n");
        if !all.site_running {
            text.push_str(&format!("  Unknown ({})\n", not_running(cli)));
        } else if all.incoming.is_empty() {
            text.push_str("  There are no connected links\n");
        }
        for i in &all.incoming {
            text.push_str(&format!(
                "  Incoming link from site {} ({}) connected since {}\n",
                i.remote_site_name, i.remote_site_id, i.since
            ));
        }
        text
    }

    fn print(&self, cli: &Cli) -> CmdResult {
        let text = self.text(cli);
        match self {
            Report::One(one) => print(cli.output, &text, one),
            Report::All(all) => print(cli.output, &text, all),
        }
    }
}

pub(super) fn link_status(cli: &Cli, name: Option<&str>) -> CmdResult {
    let site = open_site(cli)?;
    let report = Report::make(cli, &site, name)?;
    let text = report.text(cli);
    match &report {
        Report::One(one) => print(cli.output, &text, one),
        // Links whose records cannot be read are named in the report, and
        // the command then fails (exit code 5) saying what to do.
        Report::All(all) => {
            print_report(cli, &text, all, "link", &site.links_listing()?.unreadable)
        }
    }
}

/// `link status [NAME] --wait SECONDS`: waits until the link (or every
/// link) is connected, and returns at once when one cannot connect.
pub(super) fn link_wait(cli: &Cli, name: Option<&str>, seconds: u64) -> CmdResult {
    let site = open_site(cli)?;
    let start = std::time::Instant::now();
    let deadline = start + std::time::Duration::from_secs(seconds);
    let what = name.map_or("every link".to_owned(), |n| format!("link {n}"));
    let progress = Progress::start(format!("waiting up to {seconds}s for {what} to connect"));
    loop {
        let mut report = Report::make(cli, &site, name)?;
        let links = report.outgoing();
        let stuck = links.iter().find(|l| !l.will_connect);
        let waiting: Vec<&OutgoingLink> = links.iter().filter(|l| !l.connected).collect();
        let outcome = if waiting.is_empty() {
            WaitOutcome::Connected
        } else if stuck.is_some() {
            WaitOutcome::WillNotConnect
        } else if std::time::Instant::now() >= deadline {
            WaitOutcome::TimedOut
        } else {
            progress.set(&waiting[0].status);
            std::thread::sleep(std::time::Duration::from_millis(250));
            continue;
        };
        drop(progress);
        let failure = match outcome {
            WaitOutcome::Connected => None,
            WaitOutcome::WillNotConnect => {
                let l = stuck.expect("a link that will not connect");
                Some(will_not_connect(cli, l))
            }
            WaitOutcome::TimedOut => Some(Failure::new(
                Code::Network,
                format!(
                    "{} after waiting {seconds}s",
                    waiting
                        .iter()
                        .map(|l| l.status.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            )),
        };
        report.set_wait(Wait {
            seconds,
            waited_seconds: start.elapsed().as_secs(),
            outcome,
        });
        return match failure {
            None => report.print(cli),
            Some(failure) => Err(match &report {
                Report::One(one) => failure.object(one),
                Report::All(all) => failure.object(all),
            }),
        };
    }
}

/// The failure of a wait on a link that cannot connect, with what to do.
fn will_not_connect(cli: &Cli, link: &OutgoingLink) -> Failure {
    let reason = link.reason.clone().unwrap_or_default();
    let failure = Failure::new(
        Code::Refused,
        format!("Link {} will not connect: {reason}", link.name),
    );
    let ns = &cli.namespace;
    match link.state {
        // A revoked link's reason already names the command to run.
        "failed" => failure.hint(format!(
            "delete it with 'skupper-token -n {ns} link delete {}' and create it again with a new token",
            link.name
        )),
        _ => failure,
    }
}

pub(super) fn link_ping(cli: &Cli, args: &LinkPingArgs) -> CmdResult {
    let site = open_site(cli)?;
    let dir = site_dir(cli)?;
    let timeout_ms = args.timeout.saturating_mul(1000);
    // What the ping goes over as far as this command knows; the running
    // site's answer says exactly.
    let (request, mut path) = match (&args.name, &args.site) {
        (Some(name), _) => {
            let link = site.link(name)?;
            (
                Request::PingLink {
                    link: name.to_string(),
                    timeout_ms,
                },
                PingPath {
                    direction: Direction::Outgoing,
                    link: name.clone(),
                    remote_site_id: link.remote_site_id,
                    remote_site_name: None,
                },
            )
        }
        (None, Some(peer)) => (
            Request::PingSite {
                site: peer.clone(),
                timeout_ms,
            },
            PingPath {
                direction: Direction::Incoming,
                link: String::new(),
                remote_site_id: peer.clone(),
                remote_site_name: None,
            },
        ),
        (None, None) => return Err(Failure::new(Code::Usage, "give a link name or --site")),
    };
    let over = match (&args.name, &args.site) {
        (None, Some(peer)) => format!("the link with site {peer:?}"),
        _ => path.to_string(),
    };
    let mut rtts = Vec::new();
    for _ in 0..args.count.max(1) {
        let wait = std::time::Duration::from_millis(timeout_ms + 2000);
        let failure = match control::ask(&dir, &request, wait) {
            Ok(Some(Response::Pong { rtt_us, over })) => {
                if let Some(over) = over {
                    path = over;
                }
                rtts.push(rtt_us);
                if cli.output == crate::cli::args::Output::Text {
                    println!("Reply over {path}: time={:.3} ms", rtt_us as f64 / 1000.0);
                }
                continue;
            }
            Ok(Some(Response::Error { message })) => {
                Failure::new(Code::Network, message).context(format!("ping over {over}"))
            }
            Ok(Some(other)) => Failure::new(
                Code::Refused,
                format!("unexpected answer from the running site: {other:?}"),
            ),
            Ok(None) => Failure::new(Code::Network, not_running(cli)),
            Err(e) => Failure::new(Code::Network, e).context(format!("ping over {over}")),
        };
        // The pings answered before this one still count.
        return Err(failure.object(&ping_output(path, rtts)));
    }
    print(cli.output, "", &ping_output(path, rtts))
}

fn ping_output(path: PingPath, rtt_us: Vec<u64>) -> Ping {
    Ping {
        direction: path.direction,
        link: path.link,
        remote_site_id: path.remote_site_id,
        remote_site_name: path.remote_site_name,
        rtt_us,
    }
}

pub(super) fn link_delete(cli: &Cli, name: &str) -> CmdResult {
    let site = open_site(cli)?;
    // Read first only to report where it went: a damaged record is deleted
    // all the same.
    let remote_site_id = site.link(name).ok().map(|l| l.remote_site_id);
    site.delete_link(name)?;
    notify_running(cli);
    print(
        cli.output,
        &format!("Link '{name}' has been removed"),
        &LinkDeleted {
            removed: name.to_owned(),
            remote_site_id,
        },
    )
}
