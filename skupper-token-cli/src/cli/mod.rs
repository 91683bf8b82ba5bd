//! The `skupper-token` command.

mod args;
mod commands;
mod output;
mod serve;

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use skupper_token::site::{Site, SiteError};
use skupper_token::store::StoreError;

use skupper_token_cli::file_store::FileStore;
use skupper_token_cli::os_random::RingKeys;

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
    /// `serve` could not bind an address it listens on.
    CannotListen = 6,
}

/// A failed command: what to print and how to exit.
pub struct Failure {
    code: Code,
    error: Box<dyn StdError + Send + Sync>,
    context: Option<String>,
    hint: Option<String>,
}

impl Failure {
    /// A failure with an explicit code.
    pub fn new(code: Code, error: impl Into<Box<dyn StdError + Send + Sync>>) -> Failure {
        Failure {
            code,
            error: error.into(),
            context: None,
            hint: None,
        }
    }

    /// Adds what was being done (printed first).
    pub fn context(mut self, context: impl Into<String>) -> Failure {
        self.context = Some(context.into());
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
    /// The error and its causes, each printed once.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(context) = &self.context {
            write!(f, "{context}: ")?;
        }
        write!(f, "{}", self.error)?;
        let mut printed = self.error.to_string();
        let mut source = self.error.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            // `#[error(transparent)]` and "{source}" messages repeat their
            // cause; print each piece of text once.
            if !printed.contains(&text) {
                write!(f, "\n  caused by: {text}")?;
                printed.push_str(&text);
            }
            source = cause.source();
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n{hint}")?;
        }
        Ok(())
    }
}

impl From<SiteError> for Failure {
    /// A claim the remote site refused (400, 403, 404) is refused (1); one
    /// that could not be redeemed because the site was unreachable, busy or
    /// failing (5xx) is a network failure (4), worth trying again.
    fn from(e: SiteError) -> Failure {
        match &e {
            SiteError::Store(_) => Failure::new(Code::Storage, e),
            SiteError::NotInitialized => Failure::new(Code::NoSite, e),
            SiteError::ClaimRedemption {
                retryable: true, ..
            } => Failure::new(Code::Network, e)
                .hint("the site that issued the token could not be reached, or was busy or failing: try the same command again later"),
            _ => Failure::new(Code::Refused, e),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::new(Code::Storage, e)
    }
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
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(failure.code as u8)
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

/// Opens the selected namespace's site.
pub(crate) fn open_site(cli: &Cli) -> CmdResult<Site<FileStore>> {
    let dir = site_dir(cli)?;
    if !has_site(&dir) {
        return Err(no_site(cli, &dir));
    }
    let store = FileStore::open(&dir)?;
    match Site::open(store) {
        // Certificates for tokens, claims and revoke-access are made with
        // ring and OS randomness (the core's default is seeded and slower).
        Ok(site) => Ok(site.with_key_backend(RingKeys::shared())),
        Err(SiteError::NotInitialized) => Err(no_site(cli, &dir)),
        Err(e) => Err(e.into()),
    }
}

fn has_site(dir: &Path) -> bool {
    dir.join("site").is_dir()
}

fn no_site(cli: &Cli, dir: &Path) -> Failure {
    Failure::new(
        Code::NoSite,
        format!(
            "no site in namespace {:?} (looked in {})",
            cli.namespace,
            dir.display()
        ),
    )
    .hint(format!(
        "create it with 'skupper-token -n {} init'",
        cli.namespace
    ))
}
