//! `token issue`, `token redeem` and `link generate`: Skupper 2.x access
//! grants, their AccessTokens, and Link files.

use std::path::Path;

use skupper_token::site::{LinkOptions, Site};
use skupper_token::token::TokenFile;
use skupper_token::v2::{AccessToken, GrantOptions, GrantRecord, GrantState};
use time::OffsetDateTime;

use super::link;
use super::secret_file::SecretFile;
use super::{decode_token_file, now, read_token_file};
use crate::cli::args::{Cli, LinkGenerateArgs, Output, TokenIssueArgs};
use crate::cli::output::{human_duration, table};
use crate::cli::output::{print, rfc3339};
use crate::cli::schema::{Grant, GrantIssued, LinkGenerated};
use crate::cli::{open_site, CliStore, CmdResult, Code, Failure};
use skupper_token_cli::os_random::OsRandom;

pub(super) fn token_issue(cli: &Cli, args: &TokenIssueArgs) -> CmdResult {
    let mut rng = OsRandom::new();
    let options = GrantOptions {
        name: match &args.name {
            Some(name) => name.clone(),
            None => skupper_token::random::uuid_v4(&mut rng).to_string(),
        },
        redemptions_allowed: args.redemptions_allowed,
        expiration_window: args.expiration_window.into(),
        link_cost: args.cost,
        ..GrantOptions::new("")
    };
    // Where the AccessToken goes is checked before the grant is made.
    let out = SecretFile::resolve(cli, &args.file, "token issue", "the AccessToken")?;
    let site = open_site(cli)?;
    let (grant, token) = site.issue_grant(&options, now(), &mut rng)?;
    out.write(&token.encode(), "the AccessToken", |failure| {
        undo_grant(cli, &site, &grant, failure)
    })?;
    let place = out.place();
    let message = format!(
        "Grant \"{}\" issued: AccessToken written to {place}",
        grant.name
    );
    if out.streamed() && cli.output == Output::Text {
        eprintln!("{message}");
        return Ok(());
    }
    print(cli.output, &message, &issued(&grant, &token, place))
}

fn issued(grant: &GrantRecord, token: &AccessToken, file: String) -> GrantIssued {
    GrantIssued {
        kind: "access-token",
        name: grant.name.clone(),
        id: grant.id.clone(),
        file,
        url: token.url.clone(),
        redemptions_allowed: grant.redemptions_allowed,
        expires: rfc3339(grant.expires_at),
        link_cost: token.link_cost,
    }
}

/// An AccessToken whose file could not be written must not stay
/// redeemable: deletes its grant, and returns `failure`, saying so if the
/// grant could not be deleted.
fn undo_grant(cli: &Cli, site: &Site<CliStore>, grant: &GrantRecord, failure: Failure) -> Failure {
    match site.delete_grant(&grant.id) {
        Ok(_) => failure,
        Err(e) => failure.hint(format!(
            "its grant {:?} could not be deleted ({e}) and may still be redeemed by whoever has the AccessToken: delete it with 'skupper-token -n {} token delete {}'",
            grant.name, cli.namespace, grant.id
        )),
    }
}

pub(super) fn token_redeem(cli: &Cli, file: &Path) -> CmdResult {
    let bytes = read_token_file(file)?;
    let token = decode_token_file(file, &bytes)?;
    let what = match &token {
        TokenFile::AccessToken(_) => None,
        TokenFile::V1(skupper_token::token::Token::Claim(_)) => Some("a Skupper 1.x claim token"),
        TokenFile::V1(skupper_token::token::Token::Cert(_)) => Some("a Skupper 1.x cert token"),
        TokenFile::LinkFile(_) => Some("a Skupper 2.x Link file"),
    };
    if let Some(what) = what {
        return Err(Failure::new(
            Code::Usage,
            format!(
                "{} is {what}, not an AccessToken: 'token redeem' redeems AccessTokens ('token issue' writes them)",
                file.display()
            ),
        )
        .hint(format!(
            "link with it using 'skupper-token -n {} link create {}'",
            cli.namespace,
            file.display()
        )));
    }
    link::create(cli, file, &bytes, &token, &LinkOptions::default(), false)
}

pub(super) fn link_generate(cli: &Cli, args: &LinkGenerateArgs) -> CmdResult {
    let out = SecretFile::resolve(cli, &args.file, "link generate", "the Link file")?;
    let site = open_site(cli)?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => format!("link-{}", site.record()?.name),
    };
    let file = site.generate_link_file(
        &name,
        args.cost,
        args.tls_credentials.as_deref(),
        now(),
        &mut OsRandom::new(),
    )?;
    let secret = file.secret.name.clone();
    out.write(&file.encode_generated(), "the Link file", |failure| {
        // Its certificate is recorded as issued: revoking it by name voids
        // it, as for a cert token.
        failure.hint(format!(
            "the certificate made for it stays valid until revoked: 'skupper-token -n {} revoke-access --site {secret}'",
            cli.namespace
        ))
    })?;
    if out.streamed() && cli.output == Output::Text {
        // Standard output (or a pipe) carries the file and nothing else.
        return Ok(());
    }
    let place = out.place();
    print(
        cli.output,
        &format!("Link file written to {place}"),
        &LinkGenerated {
            kind: "link-file",
            links: file.links.iter().map(|l| l.name.clone()).collect(),
            tls_credentials: secret,
            file: place,
            cost: args.cost,
        },
    )
}

/// The grants for `token status`, oldest first, and their table (empty
/// text when there are none).
pub(super) fn grants_report(
    site: &Site<CliStore>,
    now: OffsetDateTime,
) -> CmdResult<(Vec<Grant>, String)> {
    let mut grants = site.grants()?;
    grants.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let mut rows = Vec::new();
    let mut items = Vec::new();
    for g in &grants {
        let state = g.state(now);
        let left = match state {
            GrantState::Expired => "expired".to_owned(),
            _ => human_duration(g.expires_at - now),
        };
        rows.push(vec![
            g.name.clone(),
            g.id.clone(),
            rfc3339(g.expires_at),
            left,
            format!("{}/{}", g.redemptions_made, g.redemptions_allowed),
            g.failed_attempts.to_string(),
            state.to_string(),
        ]);
        items.push(Grant {
            name: g.name.clone(),
            id: g.id.clone(),
            redemptions_made: g.redemptions_made,
            redemptions_allowed: g.redemptions_allowed,
            expires: rfc3339(g.expires_at),
            failed_attempts: g.failed_attempts,
            state: state.to_string(),
            created: rfc3339(g.created_at),
        });
    }
    let text = if rows.is_empty() {
        String::new()
    } else {
        format!(
            "Grants (Skupper 2.x AccessTokens):\n{}",
            table(
                &[
                    "NAME",
                    "ID",
                    "EXPIRES",
                    "TIME LEFT",
                    "REDEMPTIONS MADE",
                    "FAILED ATTEMPTS",
                    "STATE",
                ],
                &rows,
            )
        )
    };
    Ok((items, text))
}
