//! The `skupper-token` command.

mod args;
mod commands;
mod log;
mod open_files;
mod output;
mod progress;
mod schema;
mod serve;

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use skupper_token::site::{
    CreateSiteError, IncomingError, LinkError, LoadError, OpenError, RevokeError, Site, TokenError,
};
use skupper_token::store::{Key, RecordKind, Store, StoreError};

#[cfg(feature = "etcd")]
use skupper_token_cli::etcd_store::{EtcdStore, EtcdUrl};
use skupper_token_cli::file_store::FileStore;
use skupper_token_cli::os_random::RingKeys;
use skupper_token_cli::site_lock::SiteLockError;

pub use args::Cli;

/// Exit codes, as documented in `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The operation was checked and refused.
    Refused = 1,
    /// Bad arguments.
    Usage = 2,
    /// The namespace has no site.
    NoSite = 3,
    /// A remote site could not be reached.
    Network = 4,
    /// The site's files could not be read or written.
    Storage = 5,
    /// `serve` could not listen or start: an address it listens on, its
    /// control socket or its signal handlers.
    CannotListen = 6,
}

/// A failed command: what to print and how to exit.
pub struct Failure {
    code: Code,
    error: Box<dyn StdError + Send + Sync>,
    context: Option<String>,
    hint: Option<String>,
    object: Option<serde_json::Value>,
    /// The corrupt record the error is about, if any: `main` adds what to
    /// do about it as the hint.
    corrupt: Option<Box<(Key, String)>>,
}

impl Failure {
    /// A failure with an explicit code.
    pub fn new(code: Code, error: impl Into<Box<dyn StdError + Send + Sync>>) -> Failure {
        Failure {
            code,
            error: error.into(),
            context: None,
            hint: None,
            object: None,
            corrupt: None,
        }
    }

    /// Adds the command's object describing the failure, which `-o
    /// json|yaml` prints (with an `error` key) on standard output.
    pub fn object(mut self, object: &impl serde::Serialize) -> Failure {
        self.object = serde_json::to_value(object).ok();
        self
    }

    /// The error and its causes, each printed once, without the hint.
    fn message(&self) -> String {
        let mut out = String::new();
        if let Some(context) = &self.context {
            out.push_str(&format!("{context}: "));
        }
        let mut printed = self.error.to_string();
        out.push_str(&printed);
        let mut source = self.error.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            // `#[error(transparent)]` and "{source}" messages repeat their
            // cause; print each piece of text once.
            if !printed.contains(&text) {
                out.push_str(&format!("\n  caused by: {text}"));
                printed.push_str(&text);
            }
            source = cause.source();
        }
        out
    }

    /// Adds what was being done (printed first).
    pub fn context(mut self, context: impl Into<String>) -> Failure {
        self.context = Some(context.into());
        self
    }

    /// The exit code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The same failure with another exit code.
    pub fn with_code(mut self, code: Code) -> Failure {
        self.code = code;
        self
    }

    /// Adds a hint (printed last).
    pub fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Failure {
    /// The error and its causes, each printed once, then the hint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message())?;
        if let Some(hint) = &self.hint {
            write!(f, "\n{hint}")?;
        }
        Ok(())
    }
}

impl From<LinkError> for Failure {
    /// A claim the remote site refused (400, 403, 404) is refused (1); one
    /// that could not be redeemed because the site was unreachable, busy or
    /// failing (5xx) is a network failure (4), worth trying again.
    fn from(e: LinkError) -> Failure {
        match &e {
            LinkError::NotInitialized => Failure::new(Code::NoSite, e),
            LinkError::ClaimRedemption {
                retryable: true, ..
            }
            | LinkError::GrantRedemption {
                retryable: true, ..
            } => Failure::new(Code::Network, e)
                .hint("the site that issued the token could not be reached, or was busy or failing: try the same command again later"),
            LinkError::Store(store) => Failure {
                corrupt: corrupt_record(store),
                ..Failure::new(Code::Storage, e)
            },
            _ => Failure::new(Code::Refused, e),
        }
    }
}

/// The failures of one family of site operations: no site is 3, a store
/// failure 5 (with the corrupt record it names, if any), anything else was
/// refused (1).
macro_rules! failure_from_family {
    ($($family:ident),*) => {$(
        impl From<$family> for Failure {
            fn from(e: $family) -> Failure {
                match &e {
                    $family::NotInitialized => Failure::new(Code::NoSite, e),
                    $family::Store(store) => Failure {
                        corrupt: corrupt_record(store),
                        ..Failure::new(Code::Storage, e)
                    },
                    _ => Failure::new(Code::Refused, e),
                }
            }
        }
    )*};
}
failure_from_family!(LoadError, TokenError, IncomingError, RevokeError);

impl From<CreateSiteError> for Failure {
    fn from(e: CreateSiteError) -> Failure {
        match &e {
            CreateSiteError::Store(store) => Failure {
                corrupt: corrupt_record(store),
                ..Failure::new(Code::Storage, e)
            },
            _ => Failure::new(Code::Refused, e),
        }
    }
}

impl From<OpenError> for Failure {
    fn from(e: OpenError) -> Failure {
        match e {
            OpenError::NotInitialized => Failure::new(Code::NoSite, e),
            OpenError::Store(e) => e.into(),
            _ => Failure::new(Code::Refused, e),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure {
            corrupt: corrupt_record(&e),
            ..Failure::new(Code::Storage, e)
        }
    }
}

/// The record a corrupt-record error names, and where it is.
fn corrupt_record(e: &StoreError) -> Option<Box<(Key, String)>> {
    match e {
        StoreError::Corrupt { key, location, .. } => {
            Some(Box::new((key.clone(), location.clone())))
        }
        _ => None,
    }
}

/// What to do about a record that cannot be read, as a command to run.
pub(crate) fn repair_hint(namespace: &str, key: &Key, location: &str) -> String {
    match key.kind {
        RecordKind::Link => format!(
            "remove it with 'skupper-token -n {namespace} link delete {}', then create the link again from a new token",
            key.name
        ),
        RecordKind::Claim => format!(
            "void it with 'skupper-token -n {namespace} token delete {}', then create a new token if one is still needed",
            key.name
        ),
        RecordKind::Site => format!(
            "restore {location} from a backup, or replace the site (losing its links, claims and CA) with 'skupper-token -n {namespace} init --force'"
        ),
        _ => match etcd_location(location) {
            Some((etcd_key, endpoints)) => format!(
                "remove it with 'ETCDCTL_API=3 etcdctl --endpoints {endpoints} del {etcd_key}' (the site then no longer has that record)"
            ),
            None => format!(
                "move {location} out of the site directory (the site then no longer has that record)"
            ),
        },
    }
}

/// The etcd key and endpoints of a record's location in etcd ("etcd key
/// KEY at ENDPOINT, ENDPOINT"), if it is one.
fn etcd_location(location: &str) -> Option<(&str, String)> {
    let (key, endpoints) = location.strip_prefix("etcd key ")?.split_once(" at ")?;
    Some((key, endpoints.replace(", ", ",")))
}

/// Result of a command.
pub type CmdResult<T = ()> = Result<T, Failure>;

/// Parses the arguments, runs the command, prints any error once, and
/// returns the exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(Code::Usage as u8),
            };
        }
    };
    match commands::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(mut failure) => {
            if let (None, Some(corrupt)) = (&failure.hint, &failure.corrupt) {
                let (key, location) = &**corrupt;
                failure.hint = Some(repair_hint(&cli.namespace, key, location));
            }
            if cli.output != args::Output::Text {
                // Scripts get an object on standard output either way.
                let _ = output::print(cli.output, "", &failure.printed());
            }
            eprintln!("error: {failure}");
            ExitCode::from(failure.code as u8)
        }
    }
}

impl Failure {
    /// What `-o json|yaml` prints for this failure.
    fn printed(&self) -> schema::Failed {
        schema::Failed {
            object: self.object.clone(),
            error: schema::FailedError {
                message: self.message(),
                hint: self.hint.clone(),
                exit_code: self.code as u8,
            },
        }
    }
}

/// Where sites live.
pub(crate) fn home_dir(cli: &Cli) -> CmdResult<PathBuf> {
    if let Some(home) = &cli.home {
        return Ok(home.clone());
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(data).join("skupper-token"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/skupper-token")),
        None => Err(Failure::new(
            Code::Usage,
            "cannot tell where to keep sites: HOME is not set",
        )
        .hint("give --home DIR or set SKUPPER_TOKEN_HOME")),
    }
}

/// The directory of the selected namespace's site.
pub(crate) fn site_dir(cli: &Cli) -> CmdResult<PathBuf> {
    let ns = &cli.namespace;
    let valid = !ns.is_empty()
        && ns.len() <= 63
        && ns
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !ns.starts_with('-')
        && !ns.ends_with('-');
    if !valid {
        return Err(Failure::new(
            Code::Usage,
            format!(
                "invalid namespace {ns:?}: use 1 to 63 lowercase letters, digits and '-', not starting or ending with '-'"
            ),
        ));
    }
    Ok(home_dir(cli)?.join(ns))
}

/// The store every command's site is kept in: files under `--home`, or
/// etcd (`--store`).
pub(crate) type CliStore = Arc<dyn Store>;

/// Where the selected namespace's site is kept.
pub(crate) enum SiteStore {
    /// Files in this directory (no `--store`).
    Files(PathBuf),
    /// etcd, at this URL (its prefix already ends with the namespace).
    #[cfg(feature = "etcd")]
    Etcd(EtcdUrl),
}

impl SiteStore {
    /// Where the site is, for messages (never with a password).
    pub(crate) fn describe(&self) -> String {
        match self {
            SiteStore::Files(dir) => dir.display().to_string(),
            #[cfg(feature = "etcd")]
            SiteStore::Etcd(url) => url.to_string(),
        }
    }

    /// Opens the store (creating the directory of a file store).
    pub(crate) fn open(&self) -> CmdResult<CliStore> {
        Ok(match self {
            SiteStore::Files(dir) => Arc::new(FileStore::open(dir)?),
            #[cfg(feature = "etcd")]
            SiteStore::Etcd(url) => Arc::new(EtcdStore::open(url)?),
        })
    }
}

/// The store `--store` (or `SKUPPER_TOKEN_STORE`) selects for the
/// namespace; without it, the namespace's directory under `--home`.
pub(crate) fn site_store(cli: &Cli) -> CmdResult<SiteStore> {
    let dir = site_dir(cli)?;
    let Some(url) = cli.store.as_deref().filter(|u| !u.is_empty()) else {
        return Ok(SiteStore::Files(dir));
    };
    #[cfg(feature = "etcd")]
    {
        let url = EtcdUrl::parse(url).map_err(|e| {
            Failure::new(Code::Usage, e).hint(
                "give --store etcd://HOST:PORT[,HOST:PORT...][/PREFIX], or leave it out to keep sites in files under --home",
            )
        })?;
        Ok(SiteStore::Etcd(
            url.with_env_credentials().join(&cli.namespace),
        ))
    }
    #[cfg(not(feature = "etcd"))]
    {
        let _ = url;
        Err(Failure::new(
            Code::Usage,
            "this skupper-token was built without etcd support (the 'etcd' feature): --store cannot be used",
        ))
    }
}

/// Whether the site's store is shared with other machines (etcd), so that
/// `serve` replicas elsewhere may hold its live links.
pub(crate) fn is_shared(cli: &Cli) -> CmdResult<bool> {
    Ok(!matches!(site_store(cli)?, SiteStore::Files(_)))
}

/// The namespace's directory under `--home`, created if needed: what is
/// local to this machine (the control socket, the lock of its `serve`)
/// is kept there even when the site's records are in etcd.
pub(crate) fn local_dir(cli: &Cli) -> CmdResult<PathBuf> {
    let dir = site_dir(cli)?;
    if !dir.exists() {
        skupper_token_cli::fs_util::create_private_dir_all(&dir).map_err(|e| {
            Failure::new(Code::Storage, e).context(format!("cannot create {}", dir.display()))
        })?;
    }
    Ok(dir)
}

/// Opens the selected namespace's site.
pub(crate) fn open_site(cli: &Cli) -> CmdResult<Site<CliStore>> {
    let location = site_store(cli)?;
    match &location {
        SiteStore::Files(dir) if !has_site(dir)? => return Err(no_site(cli, &location)),
        _ => {}
    }
    let store = location.open()?;
    match Site::open(store) {
        // Certificates for tokens, claims and revoke-access are made with
        // ring and OS randomness (the core's default is seeded and slower).
        Ok(site) => Ok(site.with_key_backend(RingKeys::shared())),
        Err(OpenError::NotInitialized) => Err(no_site(cli, &location)),
        Err(e) => Err(e.into()),
    }
}

/// Whether `dir` holds a site. Only a missing directory means no site: a
/// directory that cannot be read (permissions, a path through a file) is a
/// storage error naming it.
fn has_site(dir: &Path) -> CmdResult<bool> {
    let records = dir.join("site");
    match std::fs::metadata(&records) {
        Ok(meta) if meta.is_dir() => Ok(true),
        Ok(_) => Err(Failure::new(
            Code::Storage,
            format!("{} exists but is not a directory", records.display()),
        )
        .context("cannot read the site")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => {
            let hint = match e.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    Some("check that this user may read that directory and every one above it (or give another --home)")
                }
                std::io::ErrorKind::NotADirectory => {
                    Some("part of that path is a file, not a directory: check --home and SKUPPER_TOKEN_HOME")
                }
                _ => None,
            };
            let failure = Failure::new(Code::Storage, e)
                .context(format!("cannot read the site in {}", records.display()));
            Err(match hint {
                Some(hint) => failure.hint(hint),
                None => failure,
            })
        }
    }
}

/// The failure of a command that could not take the site's lock:
/// `context` says what it was doing, `then` what to run after stopping the
/// holder (may be empty).
pub(crate) fn site_locked(e: SiteLockError, context: String, then: &str) -> Failure {
    match e {
        SiteLockError::Held { holder } => {
            let how = match holder.pid {
                Some(pid) => format!("Ctrl-C in its terminal, or 'kill -TERM {pid}'"),
                None => "Ctrl-C in its terminal".to_owned(),
            };
            let hint = format!("stop it first ({how}){then}");
            Failure::new(Code::Refused, SiteLockError::Held { holder })
                .context(context)
                .hint(hint)
        }
        e => Failure::new(Code::Storage, e).context(context),
    }
}

fn no_site(cli: &Cli, location: &SiteStore) -> Failure {
    Failure::new(
        Code::NoSite,
        format!(
            "no site in namespace {:?} (looked in {})",
            cli.namespace,
            location.describe()
        ),
    )
    .hint(format!(
        "create it with 'skupper-token -n {} init'",
        cli.namespace
    ))
}
