//! `status` and `revoke-access`.

use skupper_token::site::RevokeError;

use super::{live, not_running, notify_running, now, print_report};
use crate::cli::args::{Cli, RevokeArgs};
use crate::cli::output::print;
use crate::cli::schema::{Revoked, RevokedCertificate, SiteInfo, SiteStatus};
use crate::cli::{is_shared, open_site, CmdResult, Failure};
use skupper_token_cli::os_random::OsRandom;

/// The linked sites come from the site's records (outgoing link states and
/// incoming-link records with a live lease), which the running `serve`
/// keeps current; when no `serve` runs, no link is live, whatever records a
/// stopped or crashed one left. A site in etcd (`--store`) may be served
/// elsewhere: its records are counted even when no `serve` runs here (a
/// crashed replica's incoming links stop counting when their leases end).
pub(super) fn status(cli: &Cli) -> CmdResult {
    let site = open_site(cli)?;
    let mut status = site.status(now())?;
    let record = site.record()?;
    let live = live(cli)?;
    if live.is_none() && is_shared(cli)? {
        // A site in etcd may be served by replicas on other machines:
        // their incoming links are in the store under live leases.
        eprintln!(
            "note: no serve of this site runs on this machine; the linked sites are those of its replicas anywhere"
        );
    } else if live.is_none() {
        status.linked_sites = 0;
        eprintln!(
            "note: {} (links are only live while it runs)",
            not_running(cli)
        );
    }
    let value = SiteStatus {
        site: SiteInfo::from_record(&record),
        linked_sites: status.linked_sites,
        site_running: live.is_some(),
    };
    // The status does not need the links' records, but a damaged one is
    // reported (exit code 5) rather than left for later.
    print_report(
        cli,
        &status.to_string(),
        &value,
        "link",
        &site.links_listing()?.unreadable,
    )
}

pub(super) fn revoke_access(cli: &Cli, args: &RevokeArgs) -> CmdResult {
    let site = open_site(cli)?;
    match &args.site {
        None => {
            let revoked = site.revoke_access(now(), &mut OsRandom::new())?;
            notify_running(cli);
            // AccessTokens are counted where the site had issued any.
            let grants = match revoked.grants_deleted {
                0 => String::new(),
                _ => format!(" and {} AccessToken(s)", revoked.grants_voided),
            };
            let text = format!(
                "Access to site {:?} revoked: new CA (generation {}); {} claim token(s){grants} that could still have been used voided; every incoming link must be recreated with a new token.",
                cli.namespace, revoked.ca_generation, revoked.claims_voided
            );
            print(
                cli.output,
                &text,
                &Revoked::All {
                    ca_generation: revoked.ca_generation,
                    claims_deleted: revoked.claims_deleted,
                    claims_voided: revoked.claims_voided,
                    grants_deleted: revoked.grants_deleted,
                    grants_voided: revoked.grants_voided,
                    incoming_dropped: revoked.incoming_dropped.len(),
                },
            )
        }
        Some(peer) => {
            let revoked = site.revoke_peer(peer, now()).map_err(|e| {
                let unknown = matches!(e, RevokeError::UnknownPeer { .. });
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
                &Revoked::Site {
                    site: peer.clone(),
                    certificates: revoked
                        .revoked
                        .iter()
                        .map(|r| RevokedCertificate {
                            serial: r.serial.clone(),
                            common_name: r.common_name.clone(),
                        })
                        .collect(),
                },
            )
        }
    }
}
