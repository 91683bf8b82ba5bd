//! `token create|status|inspect`.

use std::path::Path;

use skupper_token::claim::ClaimState;
use skupper_token::pki::{certificate_info, pem_to_der, CertificateInfo};
use skupper_token::site::{IssuedRecord, IssuedVia, Site, TokenKind, TokenOptions};
use skupper_token::token::{Token, TokenFile};

use super::secret_file::SecretFile;
use super::{decode_token_file, now, print_report, read_token_file};
use crate::cli::args::{Cli, Output, TokenCreateArgs, TokenType};
use crate::cli::output::{human_duration, print, rfc3339, table};
use crate::cli::schema::{
    Certificate, Claim, FailedAttempt, IssuedCertificate, TokenCreated, TokenDeleted, TokenInspect,
    TokenStatus,
};
use crate::cli::{open_site, CliStore, CmdResult, Code, Failure};
use skupper_token_cli::os_random::OsRandom;

pub(super) fn token_create(cli: &Cli, args: &TokenCreateArgs) -> CmdResult {
    let options = token_options(args)?;
    // Where the token goes is checked before the token is made.
    let out = SecretFile::resolve(cli, &args.file, "token create", "the token")?;
    let site = open_site(cli)?;
    let token = site.create_token(&options, now(), &mut OsRandom::new())?;
    out.write(&token.encode(), "the token", |failure| {
        undo_token(cli, &site, &token, failure)
    })?;
    let place = out.place();
    let message = match options.kind {
        TokenKind::Claim => format!("Token written to {place}"),
        TokenKind::Cert => format!("Connection token written to {place}"),
    };
    // A token sent to a stream (standard output, a pipe, /dev/stdout) is
    // followed by nothing else there: the message goes to standard error.
    if out.streamed() && cli.output == Output::Text {
        eprintln!("{message}");
        return Ok(());
    }
    let created = TokenCreated {
        kind: kind_label(&token),
        name: token.name().to_owned(),
        file: place,
        issuing_site: token.issuer_site_id().to_owned(),
        url: match &token {
            Token::Claim(c) => Some(c.url.clone()),
            Token::Cert(_) => None,
        },
        expires: match &token {
            Token::Claim(c) => c.expires_at.map(rfc3339),
            Token::Cert(_) => None,
        },
        uses: match (&token, options.uses) {
            (Token::Claim(_), 0) | (Token::Cert(_), _) => None,
            (Token::Claim(_), uses) => Some(uses),
        },
    };
    print(cli.output, &message, &created)
}

fn kind_label(token: &Token) -> &'static str {
    match token {
        Token::Claim(_) => "claim",
        Token::Cert(_) => "cert",
    }
}

/// The options `token create` was given, checked before anything is done:
/// `--expiry` and `--uses` apply only to claim tokens.
fn token_options(args: &TokenCreateArgs) -> CmdResult<TokenOptions> {
    let mut options = match args.token_type {
        TokenType::Claim => TokenOptions::claim(),
        TokenType::Cert => {
            let given: Vec<&str> = [args.expiry.map(|_| "--expiry"), args.uses.map(|_| "--uses")]
                .into_iter()
                .flatten()
                .collect();
            if !given.is_empty() {
                return Err(Failure::new(
                    Code::Usage,
                    format!(
                        "{} cannot be used with -t cert: a cert token has no expiry and no use limit (it is valid until access is revoked)",
                        given.join(" and ")
                    ),
                )
                .hint("drop them for a cert token, or make a claim token (-t claim, the default)"));
            }
            TokenOptions::cert()
        }
    };
    if let Some(expiry) = args.expiry {
        options = options.expiry(expiry);
    }
    if let Some(uses) = args.uses {
        options = options.uses(uses);
    }
    options.name = args.name.clone();
    options
        .validate()
        .map_err(|e| Failure::new(Code::Usage, e))?;
    Ok(options)
}

/// A claim token whose file could not be written must not stay redeemable:
/// deletes its claim, and returns `failure`, saying so if the claim could
/// not be deleted.
fn undo_token(cli: &Cli, site: &Site<CliStore>, token: &Token, failure: Failure) -> Failure {
    let Token::Claim(claim) = token else {
        return failure;
    };
    match site.delete_claim(&claim.name) {
        Ok(_) => failure,
        Err(e) => failure.hint(format!(
            "its claim {:?} could not be deleted ({e}) and may still be redeemed by whoever has the token: delete it with 'skupper-token -n {} token delete {}'",
            claim.name, cli.namespace, claim.name
        )),
    }
}

pub(super) fn token_delete(cli: &Cli, name: &str) -> CmdResult {
    let site = open_site(cli)?;
    // A claim by that name, or else a grant by that id or name.
    let claim_deleted = site.delete_claim(name)?;
    if !claim_deleted && site.delete_grant(name)? > 0 {
        return print(
            cli.output,
            &format!("Grant '{name}' has been removed: its AccessToken can no longer be redeemed"),
            &TokenDeleted {
                removed: name.to_owned(),
            },
        );
    }
    if !claim_deleted {
        return Err(Failure::new(
            Code::Refused,
            format!("No such claim token \"{name}\": this site has no outstanding claim of that name"),
        )
        .hint(format!(
            "'skupper-token -n {ns} token status' lists the outstanding claim tokens; a cert token has no claim: revoke it with 'skupper-token -n {ns} revoke-access --site {name}'",
            ns = cli.namespace
        )));
    }
    print(
        cli.output,
        &format!("Token '{name}' has been removed: its claim can no longer be redeemed"),
        &TokenDeleted {
            removed: name.to_owned(),
        },
    )
}

pub(super) fn token_status(cli: &Cli) -> CmdResult {
    let site = open_site(cli)?;
    let now = now();
    let record = site.record()?;
    let listing = site.claims_listing()?;
    let mut claims = listing.records;
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

    // Claims oldest first, with their refused attempts.
    let mut items = Vec::new();
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
        items.push(Claim {
            name: c.name.clone(),
            expires: c.expires_at.map(rfc3339),
            uses_remaining: c.uses_remaining,
            uses_allowed: c.uses_allowed,
            claims_made: c.claims_made,
            failed_attempts: c.failed_attempts,
            last_failed_attempt: c.last_failed_attempt.as_ref().map(|a| FailedAttempt {
                at: rfc3339(a.at),
                site: a.site.clone(),
                reason: a.reason.clone(),
            }),
            state: state.to_string(),
            created: rfc3339(c.created_at),
        });
    }

    // Certificates issued, oldest first: cert tokens and redeemed claims.
    let mut certificates = Vec::new();
    let mut cert_rows = Vec::new();
    for c in &issued {
        let (via, token, label) = match &c.via {
            IssuedVia::CertToken { name } => ("cert-token", name, format!("cert token {name}")),
            IssuedVia::Claim { name } => ("claim", name, format!("claim {name}")),
            IssuedVia::Grant { name, .. } => ("grant", name, format!("grant {name}")),
            IssuedVia::LinkFile { name } => ("link-file", name, format!("link file {name}")),
        };
        cert_rows.push(vec![
            label,
            c.common_name.clone(),
            rfc3339(c.issued_at),
            rfc3339(c.not_after),
            cert_state(c).to_owned(),
        ]);
        certificates.push(IssuedCertificate {
            via,
            token: token.clone(),
            issued_to: c.common_name.clone(),
            serial: c.serial.clone(),
            issued: rfc3339(c.issued_at),
            expires: rfc3339(c.not_after),
            state: cert_state(c),
        });
    }

    let mut text = String::new();
    if claims.is_empty() && listing.unreadable.is_empty() {
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
        // Claims whose records cannot be read are named after the others,
        // and the command then fails (exit code 5) saying what to do.
        for u in &listing.unreadable {
            text.push_str(&format!(
                "Claim token {} cannot be read: its record is corrupt\n",
                u.key.name
            ));
        }
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
    // Grants only when there are any: a 1.x site's report is as before.
    let (grants, grant_text) = super::grant::grants_report(&site, now)?;
    text.push_str(&grant_text);
    print_report(
        cli,
        &text,
        &TokenStatus {
            claims: items,
            grants,
            certificates,
        },
        "claim",
        &listing.unreadable,
    )
}

pub(super) fn token_inspect(cli: &Cli, file: &Path) -> CmdResult {
    let bytes = read_token_file(file)?;
    let token = match decode_token_file(file, &bytes)? {
        TokenFile::V1(token) => token,
        v2 => return super::inspect_v2::inspect(cli, &v2),
    };
    let ca = pem_to_der(token.ca_pem())
        .and_then(|der| certificate_info(&der))
        .map_err(|e| Failure::new(Code::Refused, e).context("the token's CA certificate"))?;
    let mut lines = vec![
        format!(
            "Type:           {} token ({})",
            kind_label(&token),
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
    let mut value = TokenInspect {
        kind: kind_label(&token),
        name: token.name().to_owned(),
        issuing_site: token.issuer_site_id().to_owned(),
        site_version: token.issuer_version().to_owned(),
        ca: Certificate::from_info(&ca),
        url: None,
        expires: None,
        inter_router: None,
        edge: None,
        certificate: None,
    };
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
            value.url = Some(c.url.clone());
            value.expires = c.expires_at.map(rfc3339);
        }
        Token::Cert(c) => {
            lines.push(format!("Inter-router:   {}", c.inter_router));
            lines.push(format!("Edge:           {}", c.edge));
            let leaf = pem_to_der(&c.cert_pem)
                .and_then(|der| certificate_info(&der))
                .map_err(|e| Failure::new(Code::Refused, e).context("the token's certificate"))?;
            certificate_lines(&mut lines, &leaf);
            value.inter_router = Some(c.inter_router.to_string());
            value.edge = Some(c.edge.to_string());
            value.certificate = Some(Certificate::from_info(&leaf));
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

/// The lines `token inspect` shows for a certificate that comes with its
/// private key (a cert token's, a 2.x Link file's): never the key itself.
pub(super) fn certificate_lines(lines: &mut Vec<String>, leaf: &CertificateInfo) {
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
}
