//! `link create|status|ping|delete`.

use serde_json::json;
use skupper_token::link::LinkState;
use skupper_token::site::{LinkOptions, SiteError};
use skupper_token::token::Token;

use super::{decode_token, live, not_running, notify_running, now, read_token_file};
use crate::cli::args::{Cli, LinkCreateArgs, LinkPingArgs};
use crate::cli::output::print;
use crate::cli::{open_site, site_dir, CmdResult, Code, Failure};
use skupper_token_cli::control::{self, LiveState, Request, Response};
use skupper_token_cli::https::HttpsTransport;

pub(super) fn link_create(cli: &Cli, args: &LinkCreateArgs) -> CmdResult {
    let site = open_site(cli)?;
    let file = &args.file;
    let bytes = read_token_file(file)?;
    let token = decode_token(file, &bytes)?;
    let mut options = LinkOptions::default().cost(args.cost);
    options.name = args.name.clone();
    let transport = HttpsTransport::new();
    // The core's one rule: a link whose claim is not redeemed is deleted
    // again, so nothing half-made stays behind.
    let link = match site.create_link(&bytes, &options, &transport, now()) {
        Err(SiteError::AlreadyConnected { link, .. }) if args.replace => {
            site.delete_link(&link)?;
            eprintln!("Link '{link}' has been removed (--replace)");
            site.create_link(&bytes, &options, &transport, now())?
        }
        Err(e @ SiteError::AlreadyConnected { .. }) => {
            return Err(already_connected(cli, file, e));
        }
        other => other?,
    };
    // As Skupper says it: the claim URL for a claim token, the endpoint
    // for a cert token.
    let target = match &token {
        Token::Claim(claim) => claim.url.clone(),
        Token::Cert(_) => link.target.clone(),
    };
    notify_running(cli);
    let text = format!(
        "Site configured to link to {target} (name={})\nCheck the status of the link using 'skupper-token link status'.",
        link.name
    );
    print(
        cli.output,
        &text,
        &json!({"name": link.name, "target": target, "cost": link.cost}),
    )
}

/// `Already connected`, with the two ways out: replace the existing link
/// with the new token, or delete it.
fn already_connected(cli: &Cli, file: &std::path::Path, e: SiteError) -> Failure {
    let link = match &e {
        SiteError::AlreadyConnected { link, .. } => link.clone(),
        _ => "NAME".to_owned(),
    };
    let ns = &cli.namespace;
    Failure::from(e).hint(format!(
        "If that link no longer works (for example the site revoked access), replace it with this token: 'skupper-token -n {ns} link create {} --replace', or remove it first: 'skupper-token -n {ns} link delete {link}'.",
        file.display()
    ))
}

/// One link's status line: live state when the site runs, otherwise what
/// is known on disk.
fn link_line(
    cli: &Cli,
    link: &skupper_token::link::LinkRecord,
    live: Option<&LiveState>,
) -> (bool, String) {
    if let LinkState::Failed { .. } | LinkState::Pending = link.state {
        return (false, link.status().to_string());
    }
    match live.and_then(|l| l.outgoing.iter().find(|o| o.name == link.name)) {
        Some(o) if o.connected => (true, format!("Link {} is connected", link.name)),
        Some(o) => (
            false,
            match &o.reason {
                Some(reason) => format!("Link {} not connected ({reason})", link.name),
                None => format!("Link {} not connected", link.name),
            },
        ),
        None if live.is_some() => (
            false,
            format!(
                "Link {} not connected (the running site has not picked it up yet)",
                link.name
            ),
        ),
        None => (
            false,
            format!("Link {} not connected ({})", link.name, not_running(cli)),
        ),
    }
}

pub(super) fn link_status(cli: &Cli, name: Option<&str>) -> CmdResult {
    let site = open_site(cli)?;
    let live = live(cli)?;
    if let Some(name) = name {
        let link = site.link(name)?;
        let (connected, line) = link_line(cli, &link, live.as_ref());
        let value = json!({
            "name": link.name,
            "connected": connected,
            "status": line,
            "remote-site": link.remote_site_id,
            "target": link.target,
            "cost": link.cost,
            "site-running": live.is_some(),
        });
        return print(cli.output, &line, &value);
    }
    let links = site.links()?;
    let mut text = String::from("Links created from this site:\n");
    if links.is_empty() {
        text.push_str("  There are no links configured or connected\n");
    }
    let mut outgoing = Vec::new();
    for l in &links {
        let (connected, line) = link_line(cli, l, live.as_ref());
        text.push_str(&format!("  {line}\n"));
        outgoing.push(json!({
            "name": l.name,
            "connected": connected,
            "status": line,
            "remote-site": l.remote_site_id,
            "target": l.target,
            "cost": l.cost,
        }));
    }
    text.push_str("Current links from other sites that are connected:\n");
    let incoming = live
        .as_ref()
        .map(|l| l.incoming.clone())
        .unwrap_or_default();
    match &live {
        None => text.push_str(&format!("  Unknown ({})\n", not_running(cli))),
        Some(_) if incoming.is_empty() => text.push_str("  There are no connected links\n"),
        Some(_) => {}
    }
    for i in &incoming {
        text.push_str(&format!(
            "  Incoming link from site {} ({}) connected since {}\n",
            i.site_name, i.site_id, i.since
        ));
    }
    let value = json!({
        "site-running": live.is_some(),
        "outgoing": outgoing,
        "incoming": incoming,
    });
    print(cli.output, &text, &value)
}

pub(super) fn link_wait(cli: &Cli, name: &str, seconds: u64) -> CmdResult {
    let site = open_site(cli)?;
    let start = std::time::Instant::now();
    let deadline = start + std::time::Duration::from_secs(seconds);
    let mut last = String::new();
    loop {
        let link = site.link(name)?;
        let (connected, line) = link_line(cli, &link, live(cli)?.as_ref());
        if connected {
            eprintln!();
            return print(cli.output, &line, &json!({"name": name, "connected": true}));
        }
        if std::time::Instant::now() >= deadline {
            eprintln!();
            return Err(Failure::new(
                Code::Network,
                format!("{line} after waiting {seconds}s"),
            ));
        }
        if line != last {
            eprint!("\n{line} ");
            last = line;
        }
        eprint!(
            "\rwaiting for link {name} to connect: {}s/{seconds}s ",
            start.elapsed().as_secs()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

pub(super) fn link_ping(cli: &Cli, args: &LinkPingArgs) -> CmdResult {
    let site = open_site(cli)?;
    let dir = site_dir(cli)?;
    let timeout_ms = args.timeout.saturating_mul(1000);
    let (request, over) = match (&args.name, &args.site) {
        (Some(name), _) => {
            let link = site.link(name)?;
            (
                Request::PingLink {
                    link: name.to_string(),
                    timeout_ms,
                },
                format!("link {name} to site {}", link.remote_site_id),
            )
        }
        (None, Some(peer)) => (
            Request::PingSite {
                site: peer.clone(),
                timeout_ms,
            },
            format!("the incoming link from site {peer}"),
        ),
        (None, None) => return Err(Failure::new(Code::Usage, "give a link name or --site")),
    };
    let mut rtts = Vec::new();
    for _ in 0..args.count.max(1) {
        let wait = std::time::Duration::from_millis(timeout_ms + 2000);
        match control::ask(&dir, &request, wait) {
            Ok(Some(Response::Pong { rtt_us })) => {
                rtts.push(rtt_us);
                if cli.output == crate::cli::args::Output::Text {
                    println!("Reply over {over}: time={:.3} ms", rtt_us as f64 / 1000.0);
                }
            }
            Ok(Some(Response::Error { message })) => {
                return Err(
                    Failure::new(Code::Network, message).context(format!("ping over {over}"))
                )
            }
            Ok(Some(other)) => {
                return Err(Failure::new(
                    Code::Refused,
                    format!("unexpected answer: {other:?}"),
                ))
            }
            Ok(None) => return Err(Failure::new(Code::Network, not_running(cli))),
            Err(e) => {
                return Err(Failure::new(Code::Network, e).context(format!("ping over {over}")))
            }
        }
    }
    print(cli.output, "", &json!({"over": over, "rtt-us": rtts}))
}

pub(super) fn link_delete(cli: &Cli, name: &str) -> CmdResult {
    let site = open_site(cli)?;
    site.delete_link(name)?;
    notify_running(cli);
    print(
        cli.output,
        &format!("Link '{name}' has been removed"),
        &json!({"removed": name}),
    )
}
