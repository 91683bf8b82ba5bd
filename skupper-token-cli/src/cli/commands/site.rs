//! `status` and `revoke-access`.

use serde_json::json;
use skupper_token::site::SiteError;

use super::{live, not_running, notify_running, now, site_json};
use crate::cli::args::{Cli, RevokeArgs};
use crate::cli::output::print;
use crate::cli::{open_site, CmdResult, Failure};
use skupper_token_cli::control::LiveState;
use skupper_token_cli::os_random::OsRandom;

pub(super) fn status(cli: &Cli) -> CmdResult {
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

pub(super) fn revoke_access(cli: &Cli, args: &RevokeArgs) -> CmdResult {
    let site = open_site(cli)?;
    match &args.site {
        None => {
            let revoked = site.revoke_access(now(), &mut OsRandom::new())?;
            notify_running(cli);
            let text = format!(
                "Access to site {:?} revoked: new CA (generation {}); {} claim token(s) that could still have been used voided; every incoming link must be recreated with a new token.",
                cli.namespace, revoked.ca_generation, revoked.claims_voided
            );
            print(
                cli.output,
                &text,
                &json!({
                    "ca-generation": revoked.ca_generation,
                    "claims-deleted": revoked.claims_deleted,
                    "claims-voided": revoked.claims_voided,
                    "incoming-dropped": revoked.incoming_dropped.len(),
                }),
            )
        }
        Some(peer) => {
            let revoked = site.revoke_peer(peer, now()).map_err(|e| {
                let unknown = matches!(e, SiteError::UnknownPeer { .. });
                let failure = Failure::from(e);
                if unknown {
                    failure.hint(format!(
                        "Give a site id, a site name or a cert token name; 'skupper-token -n {} link status' lists the sites linked to this one.",
                        cli.namespace
                    ))
                } else {
                    failure
                }
            })?;
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
