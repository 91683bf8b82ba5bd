//! `token inspect` of a Skupper 2.x file: an AccessToken or a Link file,
//! explained as a 1.x token is, never its code or its key.

use skupper_token::pki::{certificate_info, pem_to_der};
use skupper_token::token::TokenFile;

use crate::cli::args::Cli;
use crate::cli::output::{print, rfc3339};
use crate::cli::schema::{Certificate, V2Inspect, V2InspectLink};
use crate::cli::{CmdResult, Code, Failure};

use super::token::certificate_lines;

pub(super) fn inspect(cli: &Cli, file: &TokenFile) -> CmdResult {
    let (ca_pem, what) = match file {
        TokenFile::AccessToken(t) => (&t.ca_pem, "the AccessToken's CA certificate"),
        TokenFile::LinkFile(f) => (&f.secret.ca_pem, "the Link file's CA certificate"),
        TokenFile::V1(_) => return Err(not_v2()),
    };
    let ca = pem_to_der(ca_pem)
        .and_then(|der| certificate_info(&der))
        .map_err(|e| Failure::new(Code::Refused, e).context(what))?;
    let mut lines = Vec::new();
    let value = match file {
        TokenFile::AccessToken(t) => {
            lines.push("Type:           AccessToken (Skupper 2.x; redeem it with 'token redeem', the 1.x counterpart is a claim token)".to_owned());
            lines.push(format!("Name:           {}", t.name));
            lines.push(format!("Redemption URL: {}", t.url));
            lines.push(format!("Link cost:      {}", t.link_cost));
            lines.push("Code:           (present, not shown)".to_owned());
            lines.push(
                "Expires:        (not in the file: the issuing site's 'token status' says)"
                    .to_owned(),
            );
            V2Inspect {
                kind: "access-token",
                name: t.name.clone(),
                url: Some(t.url.clone()),
                cost: t.link_cost,
                links: Vec::new(),
                ca: Certificate::from_info(&ca),
                certificate: None,
            }
        }
        TokenFile::LinkFile(f) => {
            lines.push(format!(
                "Type:           Link file (Skupper 2.x, {} Link(s) and a Secret; link with it using 'link create', the 1.x counterpart is a cert token)",
                f.links.len()
            ));
            lines.push(format!("Name:           {}", f.secret.name));
            let mut links = Vec::new();
            for link in &f.links {
                let endpoints: Vec<String> = link
                    .endpoints
                    .iter()
                    .map(|e| format!("{} {}:{}", e.name, e.host, e.port))
                    .collect();
                lines.push(format!(
                    "Link:           {} (cost {}): {}",
                    link.name,
                    link.cost,
                    endpoints.join(", ")
                ));
                links.push(V2InspectLink {
                    name: link.name.clone(),
                    endpoints,
                });
            }
            let leaf = pem_to_der(&f.secret.cert_pem)
                .and_then(|der| certificate_info(&der))
                .map_err(|e| {
                    Failure::new(Code::Refused, e).context("the Link file's certificate")
                })?;
            certificate_lines(&mut lines, &leaf);
            V2Inspect {
                kind: "link-file",
                name: f.secret.name.clone(),
                url: None,
                cost: f.links.first().map_or(0, |l| l.cost),
                links,
                ca: Certificate::from_info(&ca),
                certificate: Some(Certificate::from_info(&leaf)),
            }
        }
        TokenFile::V1(_) => return Err(not_v2()),
    };
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

/// A 1.x token is inspected by `token inspect` itself, never here.
fn not_v2() -> Failure {
    Failure::new(
        Code::Usage,
        "a Skupper 1.x token is not a Skupper 2.x file: 'token inspect' explains it as one",
    )
}
