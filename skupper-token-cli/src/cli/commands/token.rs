//! `token create|status|inspect`.

use std::io::Write as _;
use std::path::Path;

use serde_json::json;
use skupper_token::claim::ClaimState;
use skupper_token::pki::{certificate_info, pem_to_der};
use skupper_token::site::{IssuedRecord, IssuedVia, Site, TokenKind, TokenOptions};
use skupper_token::token::Token;
use time::OffsetDateTime;

use super::{decode_token, now, read_token_file};
use crate::cli::args::{Cli, TokenCreateArgs, TokenType};
use crate::cli::output::{human_duration, print, rfc3339, table};
use crate::cli::{open_site, CmdResult, Code, Failure};
use skupper_token_cli::file_store::FileStore;
use skupper_token_cli::fs_util::write_atomic;
use skupper_token_cli::os_random::OsRandom;

pub(super) fn token_create(cli: &Cli, args: &TokenCreateArgs) -> CmdResult {
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
    if to_stdout || cli.output != crate::cli::args::Output::Text {
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

pub(super) fn token_status(cli: &Cli) -> CmdResult {
    let site = open_site(cli)?;
    let now = now();
    let record = site.record()?;
    let mut claims = site.claims()?;
    claims.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
    let mut issued = site.issued()?;
    issued.sort_by(|a, b| (a.issued_at, &a.serial).cmp(&(b.issued_at, &b.serial)));
    let cert_state = |c: &IssuedRecord| {
        if record.revoked.iter().any(|r| r.serial == c.serial) {
            "revoked"
        } else if c.ca_generation != record.ca_generation {
            "old CA"
        } else if c.not_after <= now {
            "expired"
        } else {
            "valid"
        }
    };
    let cert_json = |c: &IssuedRecord| {
        json!({
            "issued-to": c.common_name,
            "serial": c.serial,
            "issued": rfc3339(c.issued_at),
            "expires": rfc3339(c.not_after),
            "state": cert_state(c),
        })
    };

    // Every token, oldest first: claims with the certificates they were
    // redeemed for, and cert tokens.
    let mut items: Vec<(OffsetDateTime, serde_json::Value)> = Vec::new();
    let mut claim_rows = Vec::new();
    let mut failures = Vec::new();
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
        claim_rows.push(vec![
            c.name.clone(),
            rfc3339(c.created_at),
            expires,
            left,
            uses,
            c.claims_made.to_string(),
            c.failed_attempts.to_string(),
            state.to_string(),
        ]);
        if let Some(last) = &c.last_failed_attempt {
            failures.push(format!(
                "  {}: {} failed attempt(s); the last at {} from site {:?}: {}",
                c.name,
                c.failed_attempts,
                rfc3339(last.at),
                last.site,
                last.reason
            ));
        }
        let certificates: Vec<serde_json::Value> = issued
            .iter()
            .filter(|i| matches!(&i.via, IssuedVia::Claim { name } if *name == c.name))
            .map(cert_json)
            .collect();
        items.push((
            c.created_at,
            json!({
                "type": "claim",
                "name": c.name,
                "expires": c.expires_at.map(rfc3339),
                "uses-remaining": c.uses_remaining,
                "uses-allowed": c.uses_allowed,
                "claims-made": c.claims_made,
                "failed-attempts": c.failed_attempts,
                "last-failed-attempt": c.last_failed_attempt.as_ref().map(|a| json!({
                    "at": rfc3339(a.at),
                    "site": a.site,
                    "reason": a.reason,
                })),
                "state": state.to_string(),
                "created": rfc3339(c.created_at),
                "certificates": certificates,
            }),
        ));
    }
    let mut cert_rows = Vec::new();
    for c in &issued {
        let token = match &c.via {
            IssuedVia::CertToken { name } => {
                let mut value = cert_json(c);
                value["type"] = json!("cert");
                value["name"] = json!(name);
                value["created"] = json!(rfc3339(c.issued_at));
                items.push((c.issued_at, value));
                format!("cert token {name}")
            }
            IssuedVia::Claim { name } => format!("claim {name}"),
        };
        cert_rows.push(vec![
            token,
            c.common_name.clone(),
            rfc3339(c.issued_at),
            rfc3339(c.not_after),
            cert_state(c).to_owned(),
        ]);
    }
    items.sort_by_key(|(created, _)| *created);

    let mut text = String::new();
    if claims.is_empty() {
        text.push_str("No outstanding claim tokens.\n");
    } else {
        text.push_str("Claim tokens:\n");
        text.push_str(&table(
            &[
                "NAME",
                "CREATED",
                "EXPIRES",
                "TIME LEFT",
                "USES LEFT",
                "CLAIMS MADE",
                "FAILED ATTEMPTS",
                "STATE",
            ],
            &claim_rows,
        ));
        if !failures.is_empty() {
            text.push_str("Failed redemption attempts:\n");
            for line in &failures {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    if issued.is_empty() {
        text.push_str("No certificates issued by the current CA.\n");
    } else {
        text.push_str("Certificates issued (cert tokens and redeemed claims):\n");
        text.push_str(&table(
            &["TOKEN", "ISSUED TO", "ISSUED", "EXPIRES", "STATE"],
            &cert_rows,
        ));
    }
    let items: Vec<serde_json::Value> = items.into_iter().map(|(_, v)| v).collect();
    print(cli.output, &text, &json!(items))
}

pub(super) fn token_inspect(cli: &Cli, file: &Path) -> CmdResult {
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
