//! What each command does.

use std::io::{Read as _, Write as _};
use std::path::Path;

use serde_json::json;
use skupper_token::claim::ClaimState;
use skupper_token::link::LinkState;
use skupper_token::pki::{certificate_info, pem_to_der};
use skupper_token::site::{
    LinkOptions, Site, SiteConfig, SiteError, SiteMode, TokenKind, TokenOptions,
};
use skupper_token::token::{Token, MAX_TOKEN_BYTES};
use time::OffsetDateTime;

use super::args::{
    Cli, Command, InitArgs, LinkCommand, LinkCreateArgs, LinkPingArgs, Mode, RevokeArgs,
    TokenCommand, TokenCreateArgs, TokenType,
};
use super::output::{human_duration, print, rfc3339, table};
use super::{open_site, site_dir, CmdResult, Code, Failure};
use skupper_token_cli::control::{self, LiveState, Request, Response};
use skupper_token_cli::file_store::FileStore;
use skupper_token_cli::fs_util::{self, write_atomic};
use skupper_token_cli::https::HttpsTransport;
use skupper_token_cli::os_random::OsRandom;

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Runs one command.
pub(crate) fn run(cli: &Cli) -> CmdResult {
    match &cli.command {
        Command::Init(args) => init(cli, args),
        Command::Token(TokenCommand::Create(args)) => token_create(cli, args),
        Command::Token(TokenCommand::Status) => token_status(cli),
        Command::Token(TokenCommand::Inspect(args)) => token_inspect(cli, &args.file),
        Command::Link(LinkCommand::Create(args)) => link_create(cli, args),
        Command::Link(LinkCommand::Status(args)) => match (&args.name, args.wait) {
            (Some(name), Some(wait)) => link_wait(cli, name, wait),
            _ => link_status(cli, args.name.as_deref()),
        },
        Command::Link(LinkCommand::Ping(args)) => link_ping(cli, args),
        Command::Link(LinkCommand::Delete(args)) => link_delete(cli, &args.name),
        Command::Status => status(cli),
        Command::RevokeAccess(args) => revoke_access(cli, args),
        Command::Serve(args) => super::serve::run(cli, args),
    }
}

// ---------------------------------------------------------------------------
// init

fn init(cli: &Cli, args: &InitArgs) -> CmdResult {
    let dir = site_dir(cli)?;
    let parent = dir
        .parent()
        .ok_or_else(|| Failure::new(Code::Usage, "the site directory has no parent"))?;
    if let Ok(existing) = open_site(cli) {
        if !args.force {
            let r = existing.record()?;
            return Err(Failure::new(
                Code::Refused,
                format!(
                    "a site already exists in namespace {:?}: {:?} (id {})",
                    r.namespace, r.name, r.id
                ),
            )
            .hint("keep it, or replace it (losing its links, claims and CA) with 'init --force'"));
        }
    }
    fs_util::create_private_dir_all(parent).map_err(|e| {
        Failure::new(Code::Storage, e).context(format!("cannot create {}", parent.display()))
    })?;
    let config = SiteConfig::new(
        args.site_name
            .clone()
            .unwrap_or_else(|| cli.namespace.clone()),
    )
    .namespace(cli.namespace.clone())
    .mode(match args.mode {
        Mode::Interior => SiteMode::Interior,
        Mode::Edge => SiteMode::Edge,
    })
    .hosts(args.ingress_hosts.iter().cloned())
    .ports(args.claims_port, args.inter_router_port, args.edge_port);

    // Build the site in a fresh directory next to the final one and move it
    // into place only when it is complete: a failure leaves nothing behind.
    let staging = parent.join(format!(".{}.init-{}", cli.namespace, std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let made = (|| -> CmdResult<Site<FileStore>> {
        let store = FileStore::open(&staging)?;
        Ok(Site::create(store, &config, now(), &mut OsRandom::new())?)
    })();
    let site = match made {
        Ok(site) => site,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let record = site.record()?;
    drop(site);
    fs_util::replace_dir(&staging, &dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staging);
        Failure::new(Code::Storage, e)
            .context(format!("cannot move the new site to {}", dir.display()))
    })?;

    let text = match record.mode {
        SiteMode::Interior => format!(
            "Site {:?} created in namespace {:?} (id {}, interior mode).\n\
             Claims are redeemed at https://{}; sites link to {} (interior) and {} (edge).\n\
             Start it with 'skupper-token -n {} serve', then create tokens with 'skupper-token -n {} token create FILE'.",
            record.name, record.namespace, record.id, record.claims, record.inter_router, record.edge,
            cli.namespace, cli.namespace
        ),
        SiteMode::Edge => format!(
            "Site {:?} created in namespace {:?} (id {}, edge mode): it links to interior sites and accepts no links.",
            record.name, record.namespace, record.id
        ),
    };
    print(cli.output, &text, &site_json(&record))
}

fn site_json(r: &skupper_token::site::SiteRecord) -> serde_json::Value {
    json!({
        "id": r.id,
        "name": r.name,
        "namespace": r.namespace,
        "mode": r.mode.to_string(),
        "version": r.version,
        "claims": r.claims.to_string(),
        "inter-router": r.inter_router.to_string(),
        "edge": r.edge.to_string(),
        "ca-generation": r.ca_generation,
        "created": rfc3339(r.created_at),
    })
}

// ---------------------------------------------------------------------------
// token

fn token_create(cli: &Cli, args: &TokenCreateArgs) -> CmdResult {
    let site = open_site(cli)?;
    let mut options = match args.token_type {
        TokenType::Claim => TokenOptions::claim(),
        TokenType::Cert => TokenOptions::cert(),
    }
    .expiry(args.expiry)
    .uses(args.uses);
    options.name = args.name.clone();
    let token = site.create_token(&options, now(), &mut OsRandom::new())?;
    let text = token.encode();
    let to_stdout = args.file.as_os_str() == "-";
    if to_stdout {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| {
                Failure::new(Code::Storage, e).context("cannot write the token to standard output")
            })?;
    } else {
        write_atomic(&args.file, text.as_bytes(), 0o600).map_err(|e| {
            undo_token(&site, &token);
            Failure::new(Code::Storage, e)
                .context(format!("cannot write the token to {}", args.file.display()))
        })?;
    }
    let place = if to_stdout {
        "standard output".to_owned()
    } else {
        args.file.display().to_string()
    };
    let message = match options.kind {
        TokenKind::Claim => format!("Token written to {place}"),
        TokenKind::Cert => format!("Connection token written to {place}"),
    };
    if to_stdout || cli.output != super::args::Output::Text {
        eprintln!("{message}");
        Ok(())
    } else {
        println!("{message}");
        Ok(())
    }
}

/// A claim token whose file could not be written must not stay redeemable.
fn undo_token(site: &Site<FileStore>, token: &Token) {
    if let Token::Claim(claim) = token {
        let _ = site.delete_claim(&claim.name);
    }
}

fn token_status(cli: &Cli) -> CmdResult {
    let site = open_site(cli)?;
    let now = now();
    let claims = site.claims()?;
    let mut rows = Vec::new();
    let mut items = Vec::new();
    for c in &claims {
        let state = c.state(now);
        let expires = c.expires_at.map_or("never".to_owned(), rfc3339);
        let left = match (c.expires_at, state) {
            (None, _) => "-".to_owned(),
            (Some(_), ClaimState::Expired) => "expired".to_owned(),
            (Some(at), _) => human_duration(at - now),
        };
        let uses = match (c.uses_remaining, c.uses_allowed) {
            (Some(r), Some(a)) => format!("{r}/{a}"),
            _ => "unlimited".to_owned(),
        };
        rows.push(vec![
            c.name.clone(),
            expires.clone(),
            left,
            uses,
            c.claims_made.to_string(),
            state.to_string(),
        ]);
        items.push(json!({
            "name": c.name,
            "expires": c.expires_at.map(rfc3339),
            "uses-remaining": c.uses_remaining,
            "uses-allowed": c.uses_allowed,
            "claims-made": c.claims_made,
            "state": state.to_string(),
            "created": rfc3339(c.created_at),
        }));
    }
    let text = if claims.is_empty() {
        "No outstanding claim tokens.".to_owned()
    } else {
        table(
            &[
                "NAME",
                "EXPIRES",
                "TIME LEFT",
                "USES LEFT",
                "CLAIMS MADE",
                "STATE",
            ],
            &rows,
        )
    };
    print(cli.output, &text, &json!(items))
}

fn read_token_file(file: &Path) -> CmdResult<Vec<u8>> {
    let describe = || {
        if file.as_os_str() == "-" {
            "standard input".to_owned()
        } else {
            file.display().to_string()
        }
    };
    let limit = (MAX_TOKEN_BYTES + 1) as u64;
    let mut bytes = Vec::new();
    let result = if file.as_os_str() == "-" {
        std::io::stdin().lock().take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    };
    result.map_err(|e| {
        Failure::new(Code::Usage, e).context(format!("cannot read the token file {}", describe()))
    })?;
    Ok(bytes)
}

fn decode_token(file: &Path, bytes: &[u8]) -> CmdResult<Token> {
    Token::decode(bytes).map_err(|e| {
        Failure::new(Code::Refused, e).context(format!("{} is not a usable token", file.display()))
    })
}

fn token_inspect(cli: &Cli, file: &Path) -> CmdResult {
    let bytes = read_token_file(file)?;
    let token = decode_token(file, &bytes)?;
    let ca = pem_to_der(token.ca_pem())
        .and_then(|der| certificate_info(&der))
        .map_err(|e| Failure::new(Code::Refused, e).context("the token's CA certificate"))?;
    let mut lines = vec![
        format!(
            "Type:           {} token ({})",
            match &token {
                Token::Claim(_) => "claim",
                Token::Cert(_) => "cert",
            },
            token.type_label()
        ),
        format!("Name:           {}", token.name()),
        format!("Issuing site:   {}", token.issuer_site_id()),
        format!(
            "Site version:   {}",
            if token.issuer_version().is_empty() {
                "(not given)"
            } else {
                token.issuer_version()
            }
        ),
    ];
    let mut value = json!({
        "type": match &token { Token::Claim(_) => "claim", Token::Cert(_) => "cert" },
        "name": token.name(),
        "issuing-site": token.issuer_site_id(),
        "site-version": token.issuer_version(),
        "ca": {
            "subject": ca.subject,
            "fingerprint-sha256": ca.fingerprint_sha256,
            "key": ca.key_algorithm,
            "not-before": rfc3339(ca.not_before),
            "not-after": rfc3339(ca.not_after),
        },
    });
    match &token {
        Token::Claim(c) => {
            lines.push(format!("Claim URL:      {}", c.url));
            let expiry = match c.expires_at {
                None => "never (or not recorded: files from before Skupper 1.8 have no expiry)"
                    .to_owned(),
                Some(at) if at <= now() => format!("{} (expired)", rfc3339(at)),
                Some(at) => format!("{} (in {})", rfc3339(at), human_duration(at - now())),
            };
            lines.push(format!("Expires:        {expiry}"));
            lines.push("Password:       (present, not shown)".to_owned());
            value["url"] = json!(c.url);
            value["expires"] = json!(c.expires_at.map(rfc3339));
        }
        Token::Cert(c) => {
            lines.push(format!("Inter-router:   {}", c.inter_router));
            lines.push(format!("Edge:           {}", c.edge));
            let leaf = pem_to_der(&c.cert_pem)
                .and_then(|der| certificate_info(&der))
                .map_err(|e| Failure::new(Code::Refused, e).context("the token's certificate"))?;
            lines.push(format!(
                "Certificate:    {} issued by {}",
                leaf.subject, leaf.issuer
            ));
            lines.push(format!(
                "  valid:        {} to {}",
                rfc3339(leaf.not_before),
                rfc3339(leaf.not_after)
            ));
            lines.push(format!(
                "  key:          {}, signed with {}",
                leaf.key_algorithm, leaf.signature_algorithm
            ));
            lines.push(format!("  serial:       {}", leaf.serial_hex));
            lines.push("  private key:  (present, not shown)".to_owned());
            value["inter-router"] = json!(c.inter_router.to_string());
            value["edge"] = json!(c.edge.to_string());
            value["certificate"] = json!({
                "subject": leaf.subject,
                "issuer": leaf.issuer,
                "serial": leaf.serial_hex,
                "key": leaf.key_algorithm,
                "signature": leaf.signature_algorithm,
                "not-before": rfc3339(leaf.not_before),
                "not-after": rfc3339(leaf.not_after),
                "fingerprint-sha256": leaf.fingerprint_sha256,
            });
        }
    }
    lines.push(format!(
        "CA:             {} ({}), valid {} to {}",
        ca.subject,
        ca.key_algorithm,
        rfc3339(ca.not_before),
        rfc3339(ca.not_after)
    ));
    lines.push(format!("CA fingerprint: SHA256 {}", ca.fingerprint_sha256));
    print(cli.output, &lines.join("\n"), &value)
}

// ---------------------------------------------------------------------------
// link

fn link_create(cli: &Cli, args: &LinkCreateArgs) -> CmdResult {
    let site = open_site(cli)?;
    let file = &args.file;
    let bytes = read_token_file(file)?;
    decode_token(file, &bytes)?;
    let mut options = LinkOptions::default().cost(args.cost);
    options.name = args.name.clone();
    let link = match site.add_link(&bytes, &options, now()) {
        Err(SiteError::AlreadyConnected { link, .. }) if args.replace => {
            site.delete_link(&link)?;
            eprintln!("Link '{link}' has been removed (--replace)");
            site.add_link(&bytes, &options, now())?
        }
        other => other?,
    };
    let target = link.target.clone();
    if link.state == LinkState::Pending {
        let transport = HttpsTransport::new();
        if let Err(e) = site.redeem_link(&link.name, &transport, now()) {
            // Nothing half-made: the failed link goes away.
            let _ = site.delete_link(&link.name);
            return Err(e.into());
        }
    }
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

/// Tells a running `serve` to pick up a change now (it also polls).
fn notify_running(cli: &Cli) {
    if let Ok(dir) = site_dir(cli) {
        let _ = control::ask(&dir, &Request::Reload, std::time::Duration::from_secs(2));
    }
}

/// The live state from a running `serve`, or `None` when none runs.
fn live(cli: &Cli) -> CmdResult<Option<LiveState>> {
    let dir = site_dir(cli)?;
    match control::ask(&dir, &Request::Live, std::time::Duration::from_secs(5)) {
        Ok(Some(Response::Live(live))) => Ok(Some(live)),
        Ok(None) => Ok(None),
        Ok(Some(Response::Error { message })) => Err(Failure::new(Code::Refused, message)
            .context("the running site could not report its links")),
        Ok(Some(other)) => Err(Failure::new(
            Code::Refused,
            format!("unexpected answer from the running site: {other:?}"),
        )),
        Err(e) => Err(Failure::new(Code::Network, e)
            .context(format!("cannot ask the running site in {}", dir.display()))),
    }
}

fn not_running(cli: &Cli) -> String {
    format!(
        "site not running: start it with 'skupper-token -n {} serve'",
        cli.namespace
    )
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

fn link_status(cli: &Cli, name: Option<&str>) -> CmdResult {
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

fn link_wait(cli: &Cli, name: &str, seconds: u64) -> CmdResult {
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

fn link_ping(cli: &Cli, args: &LinkPingArgs) -> CmdResult {
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
                if cli.output == super::args::Output::Text {
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

fn link_delete(cli: &Cli, name: &str) -> CmdResult {
    let site = open_site(cli)?;
    site.delete_link(name)?;
    notify_running(cli);
    print(
        cli.output,
        &format!("Link '{name}' has been removed"),
        &json!({"removed": name}),
    )
}

// ---------------------------------------------------------------------------
// status and revoke-access

fn status(cli: &Cli) -> CmdResult {
    let site = open_site(cli)?;
    let mut status = site.status()?;
    let record = site.record()?;
    let live = live(cli)?;
    status.linked_sites = live.as_ref().map_or(0, LiveState::linked_sites);
    if live.is_none() {
        eprintln!(
            "note: {} (links are only live while it runs)",
            not_running(cli)
        );
    }
    let mut value = site_json(&record);
    value["linked-sites"] = json!(status.linked_sites);
    value["site-running"] = json!(live.is_some());
    print(cli.output, &status.to_string(), &value)
}

fn revoke_access(cli: &Cli, args: &RevokeArgs) -> CmdResult {
    let site = open_site(cli)?;
    match &args.site {
        None => {
            let revoked = site.revoke_access(now(), &mut OsRandom::new())?;
            notify_running(cli);
            let text = format!(
                "Access to site {:?} revoked: new CA (generation {}); {} outstanding claim token(s) voided; every incoming link must be recreated with a new token.",
                cli.namespace, revoked.ca_generation, revoked.claims_deleted
            );
            print(
                cli.output,
                &text,
                &json!({
                    "ca-generation": revoked.ca_generation,
                    "claims-deleted": revoked.claims_deleted,
                    "incoming-dropped": revoked.incoming_dropped.len(),
                }),
            )
        }
        Some(peer) => {
            let revoked = site.revoke_peer(peer, now())?;
            notify_running(cli);
            let text = format!(
                "Access for {peer:?} revoked: {} certificate(s) no longer accepted; other sites stay linked.",
                revoked.revoked.len()
            );
            print(
                cli.output,
                &text,
                &json!({
                    "peer": peer,
                    "certificates": revoked.revoked.iter().map(|r| json!({
                        "serial": r.serial,
                        "common-name": r.common_name,
                    })).collect::<Vec<_>>(),
                }),
            )
        }
    }
}
