//! What each command does: one module per command family.

mod grant;
mod init;
mod inspect_v2;
mod link;
mod secret_file;
mod site;
mod token;

use std::io::Read as _;
use std::path::Path;

use skupper_token::token::{TokenFile, MAX_TOKEN_BYTES};
use time::OffsetDateTime;

use crate::cli::args::{Cli, Command, LinkCommand, Output, TokenCommand};
use crate::cli::output::print;
use crate::cli::{repair_hint, site_dir, CmdResult, Code, Failure};
use skupper_token::store::{StoreError, Unreadable};
use skupper_token_cli::control::{self, LiveState, Request, Response};

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Runs one command.
pub(crate) fn run(cli: &Cli) -> CmdResult {
    match &cli.command {
        Command::Init(args) => init::init(cli, args),
        Command::Token(TokenCommand::Create(args)) => token::token_create(cli, args),
        Command::Token(TokenCommand::Issue(args)) => grant::token_issue(cli, args),
        Command::Token(TokenCommand::Redeem(args)) => grant::token_redeem(cli, &args.file),
        Command::Token(TokenCommand::Status) => token::token_status(cli),
        Command::Token(TokenCommand::Inspect(args)) => token::token_inspect(cli, &args.file),
        Command::Token(TokenCommand::Delete(args)) => token::token_delete(cli, &args.name),
        Command::Link(LinkCommand::Create(args)) => link::link_create(cli, args),
        Command::Link(LinkCommand::Generate(args)) => grant::link_generate(cli, args),
        Command::Link(LinkCommand::Status(args)) => match args.wait {
            Some(wait) => link::link_wait(cli, args.name.as_deref(), wait),
            None => link::link_status(cli, args.name.as_deref()),
        },
        Command::Link(LinkCommand::Ping(args)) => link::link_ping(cli, args),
        Command::Link(LinkCommand::Delete(args)) => link::link_delete(cli, &args.name),
        Command::Status => site::status(cli),
        Command::RevokeAccess(args) => site::revoke_access(cli, args),
        Command::Serve(args) => crate::cli::serve::run(cli, args),
    }
}

fn read_token_file(file: &Path) -> CmdResult<Vec<u8>> {
    let describe = || {
        if file.as_os_str() == "-" {
            "standard input".to_owned()
        } else {
            file.display().to_string()
        }
    };
    let limit = (MAX_TOKEN_BYTES + 1) as u64;
    let mut bytes = Vec::new();
    let result = if file.as_os_str() == "-" {
        std::io::stdin().lock().take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    };
    result.map_err(|e| {
        Failure::new(Code::Usage, e).context(format!("cannot read the token file {}", describe()))
    })?;
    Ok(bytes)
}

/// A token file of any generation ([`TokenFile::decode`]).
fn decode_token_file(file: &Path, bytes: &[u8]) -> CmdResult<TokenFile> {
    TokenFile::decode(bytes).map_err(|e| {
        Failure::new(Code::Refused, e).context(format!("{} is not a usable token", file.display()))
    })
}

/// Tells a running `serve` to pick up a change now (it also polls).
fn notify_running(cli: &Cli) {
    if let Ok(dir) = site_dir(cli) {
        let _ = control::ask(&dir, &Request::Reload, std::time::Duration::from_secs(2));
    }
}

/// The live state from a running `serve`, or `None` when none runs.
fn live(cli: &Cli) -> CmdResult<Option<LiveState>> {
    let dir = site_dir(cli)?;
    match control::ask(&dir, &Request::Live, std::time::Duration::from_secs(5)) {
        Ok(Some(Response::Live(live))) => Ok(Some(live)),
        Ok(None) => Ok(None),
        Ok(Some(Response::Error { message })) => Err(Failure::new(Code::Refused, message)
            .context("the running site could not report its links")),
        Ok(Some(other)) => Err(Failure::new(
            Code::Refused,
            format!("unexpected answer from the running site: {other:?}"),
        )),
        Err(e) => Err(Failure::new(Code::Network, e)
            .context(format!("cannot ask the running site in {}", dir.display()))),
    }
}

/// Prints a report (`text`, or `value` with `-o json|yaml`) that left out
/// records it could not read, then fails (exit code 5) naming each one,
/// where it is and what to do about it. With `-o json|yaml` the report
/// goes into the failure's object, so standard output holds one document.
/// Just prints when every record was read.
fn print_report<T: serde::Serialize>(
    cli: &Cli,
    text: &str,
    value: &T,
    kind: &str,
    records: &[Unreadable],
) -> CmdResult {
    let Some(first) = records.first() else {
        return print(cli.output, text, value);
    };
    let message = if records.len() == 1 {
        format!("1 {kind} record cannot be read: {}", first.error)
    } else {
        let mut message = format!("{} {kind} records cannot be read:", records.len());
        for r in records {
            message.push_str(&format!("\n  {}", r.error));
        }
        message
    };
    let hints: Vec<String> = records
        .iter()
        .map(|r| {
            let location = match &r.error {
                StoreError::Corrupt { location, .. } => location.clone(),
                _ => r.key.to_string(),
            };
            repair_hint(&cli.namespace, &r.key, &location)
        })
        .collect();
    let failure = Failure::new(Code::Storage, message).hint(hints.join("\n"));
    if cli.output == Output::Text {
        print(cli.output, text, value)?;
        Err(failure)
    } else {
        Err(failure.object(value))
    }
}

fn not_running(cli: &Cli) -> String {
    format!(
        "site not running: start it with 'skupper-token -n {} serve'",
        cli.namespace
    )
}
