//! `init`: create the site of a namespace.

use skupper_token::site::{Site, SiteConfig, SiteMode};

use super::now;
use crate::cli::args::{Cli, InitArgs, Mode};
use crate::cli::output::print;
use crate::cli::schema::SiteInfo;
use std::path::Path;

use skupper_token::records::SiteRecord;

#[cfg(feature = "etcd")]
use crate::cli::CliStore;
use crate::cli::{open_site, site_locked, site_store, CmdResult, Code, Failure, SiteStore};
#[cfg(feature = "etcd")]
use skupper_token_cli::etcd_store::{EtcdStore, EtcdUrl};
use skupper_token_cli::file_store::FileStore;
use skupper_token_cli::fs_util::{self};
use skupper_token_cli::os_random::OsRandom;
use skupper_token_cli::site_lock::SiteLock;

pub(super) fn init(cli: &Cli, args: &InitArgs) -> CmdResult {
    match site_store(cli)? {
        SiteStore::Files(dir) => init_in_dir(cli, args, &dir),
        #[cfg(feature = "etcd")]
        SiteStore::Etcd(url) => init_in_etcd(cli, args, &url),
    }
}

/// Refuses to replace an existing site (or the records of one whose site
/// record is gone) unless `--force`. `leftover` counts the records other
/// than the site record; `site_record` and `location` say where they are.
fn check_replace(
    cli: &Cli,
    args: &InitArgs,
    leftover: &dyn Fn() -> CmdResult<usize>,
    site_record: &str,
    location: &str,
) -> CmdResult {
    match open_site(cli) {
        Ok(existing) if !args.force => {
            let r = existing.record()?;
            Err(Failure::new(
                Code::Refused,
                format!(
                    "a site already exists in namespace {:?}: {:?} (id {})",
                    r.namespace, r.name, r.id
                ),
            )
            .hint("keep it, or replace it (losing its links, claims and CA) with 'init --force'"))
        }
        Ok(_) => Ok(()),
        Err(f) if f.code == Code::NoSite && !args.force => {
            // No site record, but records of a site: its record was lost
            // (deleted by hand, say). Making a new site would throw the
            // rest away unasked.
            let left = leftover()?;
            if left > 0 {
                return Err(Failure::new(
                    Code::Refused,
                    format!(
                        "namespace {:?} has no site record ({site_record} is missing) but holds {left} record(s) of a site (claims, links or certificates) in {location}",
                        cli.namespace,
                    ),
                )
                .hint("move them away if they are still needed, or replace them with a new site with 'init --force'"));
            }
            Ok(())
        }
        Err(f) if f.code == Code::NoSite => Ok(()),
        // A site whose record cannot be read is still a site: making a new
        // one would throw away its links, claims and CA unasked.
        Err(mut f) if f.corrupt.is_some() && !args.force => {
            f.code = Code::Refused;
            Err(f.context(format!(
                "a site already exists in namespace {:?} but cannot be opened",
                cli.namespace
            )))
        }
        Err(f) if f.corrupt.is_some() => Ok(()),
        Err(f) => Err(f),
    }
}

/// The lock of a `serve` of this namespace on this machine, if its
/// directory exists: a site being served is not replaced under it.
fn lock_against_serve(cli: &Cli, dir: &Path) -> CmdResult<Option<SiteLock>> {
    if !dir.exists() {
        return Ok(None);
    }
    SiteLock::acquire(dir, "init").map(Some).map_err(|e| {
        site_locked(
            e,
            format!("cannot replace the site in namespace {:?}", cli.namespace),
            &format!(
                ", then run 'skupper-token -n {} init --force' again",
                cli.namespace
            ),
        )
    })
}

/// What `init` creates.
fn config(cli: &Cli, args: &InitArgs) -> SiteConfig {
    SiteConfig::new(
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
    .ports(args.claims_port, args.inter_router_port, args.edge_port)
}

/// `init` with the site in etcd: records under the namespace's prefix.
/// `--force` removes every record under it first (the old site is gone
/// even if creating the new one then fails).
#[cfg(feature = "etcd")]
fn init_in_etcd(cli: &Cli, args: &InitArgs, url: &EtcdUrl) -> CmdResult {
    use skupper_token::store::{RecordKind, Store as _};
    let store = EtcdStore::open(url)?;
    let leftover = || -> CmdResult<usize> {
        let mut n = 0;
        for kind in RecordKind::ALL
            .into_iter()
            .filter(|k| *k != RecordKind::Site)
        {
            n += store.names(kind)?.len();
        }
        Ok(n)
    };
    let site_record = store.etcd_key(&skupper_token::store::Key::site());
    check_replace(cli, args, &leftover, &site_record, &url.to_string())?;
    let _lock = lock_against_serve(cli, &crate::cli::site_dir(cli)?)?;
    if args.force {
        store.delete_all()?;
    }
    let store: CliStore = std::sync::Arc::new(store);
    let site = Site::create(store, &config(cli, args), now(), &mut OsRandom::new())?;
    created(cli, &site.record()?)
}

/// `init` with the site in files under `--home`.
fn init_in_dir(cli: &Cli, args: &InitArgs, dir: &Path) -> CmdResult {
    let parent = dir
        .parent()
        .ok_or_else(|| Failure::new(Code::Usage, "the site directory has no parent"))?;
    check_replace(
        cli,
        args,
        &|| Ok(leftover_records(dir)),
        &dir.join("site/site.json").display().to_string(),
        &dir.display().to_string(),
    )?;
    // A site being served is not replaced under its `serve`; the lock is
    // held until the new site is in place.
    let _lock = lock_against_serve(cli, dir)?;
    fs_util::create_private_dir_all(parent).map_err(|e| {
        Failure::new(Code::Storage, e).context(format!("cannot create {}", parent.display()))
    })?;
    let config = config(cli, args);

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
    fs_util::replace_dir(&staging, dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staging);
        Failure::new(Code::Storage, e)
            .context(format!("cannot move the new site to {}", dir.display()))
    })?;

    created(cli, &record)
}

/// Prints what `init` created.
fn created(cli: &Cli, record: &SiteRecord) -> CmdResult {
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
    print(cli.output, &text, &SiteInfo::from_record(record))
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
