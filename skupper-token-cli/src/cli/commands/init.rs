//! `init`: create the site of a namespace.

use skupper_token::site::{Site, SiteConfig, SiteMode};

use super::now;
use crate::cli::args::{Cli, InitArgs, Mode};
use crate::cli::output::print;
use crate::cli::schema::SiteInfo;
use crate::cli::{open_site, site_dir, site_locked, CmdResult, Code, Failure};
use skupper_token_cli::file_store::FileStore;
use skupper_token_cli::fs_util::{self};
use skupper_token_cli::os_random::OsRandom;
use skupper_token_cli::site_lock::SiteLock;

pub(super) fn init(cli: &Cli, args: &InitArgs) -> CmdResult {
    let dir = site_dir(cli)?;
    let parent = dir
        .parent()
        .ok_or_else(|| Failure::new(Code::Usage, "the site directory has no parent"))?;
    match open_site(cli) {
        Ok(existing) if !args.force => {
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
        Ok(_) => {}
        Err(f) if f.code == Code::NoSite && !args.force => {
            // No site record, but records of a site: its record was lost
            // (deleted by hand, say). Making a new site would throw the
            // rest away unasked.
            let left = leftover_records(&dir);
            if left > 0 {
                return Err(Failure::new(
                    Code::Refused,
                    format!(
                        "namespace {:?} has no site record ({} is missing) but holds {left} record(s) of a site (claims, links or certificates) in {}",
                        cli.namespace,
                        dir.join("site/site.json").display(),
                        dir.display()
                    ),
                )
                .hint("move them away if they are still needed, or replace them with a new site with 'init --force'"));
            }
        }
        Err(f) if f.code == Code::NoSite => {}
        // A site whose record cannot be read is still a site: making a new
        // one would throw away its links, claims and CA unasked.
        Err(mut f) if f.corrupt.is_some() && !args.force => {
            f.code = Code::Refused;
            return Err(f.context(format!(
                "a site already exists in namespace {:?} but cannot be opened",
                cli.namespace
            )));
        }
        Err(f) if f.corrupt.is_some() => {}
        Err(f) => return Err(f),
    }
    // A site being served is not replaced under its `serve`; the lock is
    // held until the new site is in place.
    let _lock = if dir.exists() {
        Some(SiteLock::acquire(&dir, "init").map_err(|e| {
            site_locked(
                e,
                format!("cannot replace the site in namespace {:?}", cli.namespace),
                &format!(
                    ", then run 'skupper-token -n {} init --force' again",
                    cli.namespace
                ),
            )
        })?)
    } else {
        None
    };
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
    print(cli.output, &text, &SiteInfo::from_record(&record))
}

/// How many record files the site directory `dir` holds besides its site
/// record (0 when it does not exist).
fn leftover_records(dir: &std::path::Path) -> usize {
    skupper_token::store::RecordKind::ALL
        .iter()
        .filter(|kind| **kind != skupper_token::store::RecordKind::Site)
        .filter_map(|kind| std::fs::read_dir(dir.join(kind.as_str())).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.ends_with(".json") && !n.starts_with('.'))
        })
        .count()
}
