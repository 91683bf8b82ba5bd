//! Command-line arguments.

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use skupper_token::duration::GoDuration;
use skupper_token_cli::links::RuntimeOptions;
use skupper_token_cli::runtime::claims::EndpointOptions;

const AFTER_HELP: &str = "\
Examples:
  skupper-token -n west init --ingress-host 127.0.0.1
  skupper-token -n west serve &
  skupper-token -n west token create secret.yaml --expiry 30m0s --uses 2
  skupper-token -n east init --ingress-host 127.0.0.1 --claims-port 18081
  skupper-token -n east link create secret.yaml
  skupper-token -n west status
  skupper-token -n west revoke-access

Exit codes:
  0  success
  1  refused: checked and refused, here or by the remote site (a wrong claim
     password, an expired or used-up claim, `link status --wait` on a link
     that will not connect): trying again does not help
  2  usage: bad arguments
  3  no site: the namespace has no site yet (run `init`)
  4  network: a remote site could not be reached, or was busy or failing
     (5xx), or a `--wait` ran out: try again
  5  storage: the site's files could not be read or written
  6  cannot serve: `serve` could not listen or start (an address in use by
     another program or another `serve` of the same site, not an address of
     this machine, or not allowed; the control socket or signal handlers
     could not be set up)";

/// Skupper-compatible site-linking tokens: create sites, tokens and links,
/// serve claims, revoke access.
#[derive(Debug, Parser)]
#[command(name = "skupper-token", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// The site to act on.
    #[arg(
        short = 'n',
        long,
        global = true,
        env = "SKUPPER_TOKEN_NAMESPACE",
        default_value = "default"
    )]
    pub namespace: String,

    /// Directory holding one directory per namespace [default:
    /// $XDG_DATA_HOME/skupper-token or ~/.local/share/skupper-token].
    #[arg(long, global = true, env = "SKUPPER_TOKEN_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Where the site's records live: without it, files in the
    /// namespace's directory under --home; with
    /// etcd://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...][/PREFIX] (or
    /// etcds://...?ca=FILE[&cert=FILE&key=FILE] for TLS), in etcd under
    /// PREFIX/NAMESPACE [default prefix: /skupper-token]. The user and
    /// password may come from SKUPPER_TOKEN_ETCD_USER and
    /// SKUPPER_TOKEN_ETCD_PASSWORD instead. Even on etcd, the namespace's
    /// directory under --home holds what is local to this machine: the
    /// control socket and the lock of its `serve`.
    #[arg(long, global = true, env = "SKUPPER_TOKEN_STORE", value_name = "URL")]
    pub store: Option<String>,

    /// Output format for commands that print data.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Sentences, as Skupper prints them.
    Text,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the site for this namespace: its id, CA and server
    /// certificate.
    #[command(after_help = "Example:\n  skupper-token -n west init --ingress-host 192.0.2.10")]
    Init(InitArgs),
    /// Create, list, inspect and delete tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Create, inspect and delete links to other sites.
    #[command(subcommand)]
    Link(LinkCommand),
    /// Show the site's status.
    #[command(after_help = "Example:\n  skupper-token -n west status")]
    Status,
    /// Revoke access to this site: a new CA, every outstanding claim token
    /// void, every incoming link dropped. With --site, only that remote
    /// site loses access.
    #[command(
        name = "revoke-access",
        after_help = "Examples:\n  skupper-token -n west revoke-access\n  skupper-token -n west revoke-access --site 7c1f1d3a-0e0b-4bde-8f3c-2d7c9a3a2b11"
    )]
    RevokeAccess(RevokeArgs),
    /// Run the site: serve claim redemptions and live links until
    /// interrupted (Ctrl-C or SIGTERM).
    #[command(
        after_help = "Examples:\n  skupper-token -n west serve\n  skupper-token -n west serve --claims-listen 127.0.0.1:8081 --inter-router-listen 192.0.2.10:55671\n  skupper-token -n west serve --log-format json >> west.log\n\nExit code 6 when an address cannot be bound (see 'skupper-token --help')."
    )]
    Serve(ServeArgs),
}

/// `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The site name [default: the namespace].
    #[arg(long)]
    pub site_name: Option<String>,
    /// Interior sites accept links; edge sites only make them.
    #[arg(long, value_enum, default_value_t = Mode::Interior)]
    pub mode: Mode,
    /// Host name or IP address other sites reach this site at (repeat for
    /// several; the first is written into tokens).
    #[arg(
        long = "ingress-host",
        value_name = "HOST",
        default_value = "127.0.0.1"
    )]
    pub ingress_hosts: Vec<String>,
    /// Port of the claims endpoint.
    #[arg(long, default_value_t = skupper_token::site::DEFAULT_CLAIMS_PORT)]
    pub claims_port: u16,
    /// Port other interior sites link to.
    #[arg(long, default_value_t = skupper_token::site::DEFAULT_INTER_ROUTER_PORT)]
    pub inter_router_port: u16,
    /// Port edge sites link to.
    #[arg(long, default_value_t = skupper_token::site::DEFAULT_EDGE_PORT)]
    pub edge_port: u16,
    /// Replace an existing site in this namespace (its links, claims and CA
    /// are lost).
    #[arg(long)]
    pub force: bool,
}

/// Site modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Accepts links and issues tokens.
    Interior,
    /// Only links to interior sites.
    Edge,
}

/// `token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Write a token that another site uses to link to this one.
    #[command(
        after_help = "Examples:\n  skupper-token token create secret.yaml --expiry 30m0s --uses 2\n  skupper-token token create cert.yaml -t cert\n  skupper-token token create - > secret.yaml"
    )]
    Create(TokenCreateArgs),
    /// Issue a Skupper 2.x access grant and write its AccessToken, which
    /// another site redeems ('token redeem') to link to this one. 'serve'
    /// answers the redemption on the claims port.
    #[command(
        after_help = "Examples:\n  skupper-token -n west token issue west.yaml\n  skupper-token -n west token issue west.yaml --redemptions-allowed 2 --expiration-window 30m\n  skupper-token -n west token issue - --name for-east --cost 2 > west.yaml"
    )]
    Issue(TokenIssueArgs),
    /// Redeem a Skupper 2.x AccessToken (from this tool or from Skupper):
    /// link this site to the site that issued it. A token is redeemed once;
    /// the link keeps what the redemption returned.
    #[command(
        after_help = "Examples:\n  skupper-token -n east token redeem west.yaml\n  skupper-token -n east token redeem west.yaml && skupper-token -n east link status --wait 30"
    )]
    Redeem(TokenRedeemArgs),
    /// List this site's outstanding claims.
    #[command(after_help = "Example:\n  skupper-token -n west token status")]
    Status,
    /// Show what a token file is, without using it (never prints the
    /// password or the key).
    #[command(after_help = "Example:\n  skupper-token token inspect secret.yaml")]
    Inspect(TokenInspectArgs),
    /// Delete an outstanding claim, so that its claim token can no longer
    /// be used to link (also when its record is corrupt). A cert token has
    /// no claim: revoke it with 'revoke-access --site NAME'.
    #[command(
        after_help = "Examples:\n  skupper-token -n west token status\n  skupper-token -n west token delete 0f6a2d1e-8b7c-4d3a-9e5f-1a2b3c4d5e6f"
    )]
    Delete(TokenDeleteArgs),
}

/// `token delete`.
#[derive(Debug, Args)]
pub struct TokenDeleteArgs {
    /// The claim token's name (as 'token status' lists it).
    pub name: String,
}

/// Token types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenType {
    /// Exchanged for a certificate when used; limited by time and uses.
    Claim,
    /// Carries a certificate; reusable until access is revoked.
    Cert,
}

/// `token create`.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// Where to write the token (`-` for standard output). A regular file
    /// is replaced atomically, a symbolic link is followed to its target,
    /// a named pipe or a device is written to; a directory is refused.
    pub file: PathBuf,
    /// The token type.
    #[arg(short = 't', long = "token-type", value_enum, default_value_t = TokenType::Claim)]
    pub token_type: TokenType,
    /// Claim tokens only: how long the token can be used (Go duration:
    /// 30m0s, 1h, 90s; at least 1s; 0 = never expires) [default: 15m0s].
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub expiry: Option<GoDuration>,
    /// Claim tokens only: how many links the token can make (0 = unlimited)
    /// [default: 1].
    #[arg(long, allow_negative_numbers = true)]
    pub uses: Option<u32>,
    /// The token name [default: a UUID for claims, `skupper` for cert
    /// tokens].
    #[arg(long)]
    pub name: Option<String>,
}

/// `token issue`.
#[derive(Debug, Args)]
pub struct TokenIssueArgs {
    /// Where to write the AccessToken (`-` for standard output), as for
    /// 'token create': mode 0600, a regular file replaced atomically.
    pub file: PathBuf,
    /// The grant's name, which the redeemed Secret and Link are named
    /// after [default: a UUID].
    #[arg(long)]
    pub name: Option<String>,
    /// How many sites can redeem the AccessToken (at least 1).
    #[arg(long, value_name = "N", default_value_t = skupper_token::v2::grant::DEFAULT_REDEMPTIONS)]
    pub redemptions_allowed: u32,
    /// How long the AccessToken can be redeemed (Go duration: 15m, 1h30m;
    /// over 0).
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "15m0s",
        allow_hyphen_values = true
    )]
    pub expiration_window: GoDuration,
    /// The cost of the links its redemption makes (`spec.linkCost`; 0:
    /// the cost the issuing site gives).
    #[arg(long, value_name = "C", default_value_t = skupper_token::v2::grant::DEFAULT_LINK_COST)]
    pub cost: u32,
}

/// `token redeem`.
#[derive(Debug, Args)]
pub struct TokenRedeemArgs {
    /// The AccessToken file (`-` for standard input).
    pub file: PathBuf,
}

/// `token inspect`.
#[derive(Debug, Args)]
pub struct TokenInspectArgs {
    /// The token file (`-` for standard input).
    pub file: PathBuf,
}

/// `link ...`.
#[derive(Debug, Subcommand)]
pub enum LinkCommand {
    /// Link this site to the site that issued a token.
    #[command(
        after_help = "Examples:\n  skupper-token -n east link create secret.yaml\n  skupper-token -n east link create secret.yaml --name to-west --cost 2"
    )]
    Create(LinkCreateArgs),
    /// Write a Skupper 2.x Link file (Link and Secret, as 'skupper link
    /// generate' writes it) that another site, this tool's or Skupper's,
    /// links to this one with: a fresh certificate from the site CA, valid
    /// until access is revoked ('revoke-access --site NAME', NAME being
    /// the TLS credentials name).
    #[command(
        after_help = "Examples:\n  skupper-token -n west link generate > link.yaml\n  skupper-token -n west link generate to-east --cost 2 -f link.yaml\n  skupper-token -n east link create link.yaml"
    )]
    Generate(LinkGenerateArgs),
    /// Show the status of one link or of all links.
    #[command(
        after_help = "Examples:\n  skupper-token -n east link status\n  skupper-token -n east link status link1\n  skupper-token -n east link status link1 --wait 30\n\nExit codes with --wait:\n  0  connected (every link, without a name)\n  1  a link will not connect: its claim was refused, the remote site revoked\n     access, or this site's 'serve' is not running (returns at once)\n  4  still not connected when the wait ran out"
    )]
    Status(LinkStatusArgs),
    /// Delete a link (also when its record is corrupt).
    #[command(after_help = "Example:\n  skupper-token -n east link delete link1")]
    Delete(LinkDeleteArgs),
    /// Send a message over a live link and print the round trip (needs
    /// 'serve' running).
    #[command(
        after_help = "Examples:\n  skupper-token -n east link ping link1\n  skupper-token -n west link ping --site east"
    )]
    Ping(LinkPingArgs),
}

/// `link ping`.
#[derive(Debug, Args)]
pub struct LinkPingArgs {
    /// The outgoing link to ping over.
    #[arg(required_unless_present = "site", conflicts_with = "site")]
    pub name: Option<String>,
    /// Ping over the incoming link from this site (its id or name) instead.
    #[arg(long, value_name = "ID|NAME")]
    pub site: Option<String>,
    /// How many pings.
    #[arg(short = 'c', long, default_value_t = 1)]
    pub count: u32,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
}

/// `link create`.
#[derive(Debug, Args)]
pub struct LinkCreateArgs {
    /// The token file (`-` for standard input).
    pub file: PathBuf,
    /// The link name [default: link1, link2, ...].
    #[arg(long)]
    pub name: Option<String>,
    /// The link cost.
    #[arg(long, default_value_t = skupper_token::link::DEFAULT_COST)]
    pub cost: u32,
    /// If a link to the same site exists (for example a stale one after
    /// that site revoked access), delete it and create the new one.
    #[arg(long)]
    pub replace: bool,
}

/// `link generate`.
#[derive(Debug, Args)]
pub struct LinkGenerateArgs {
    /// The link's name; its Link is named `<NAME>-skupper-router`
    /// [default: link-<site name>].
    pub name: Option<String>,
    /// The cost of the link the file makes.
    #[arg(long, value_name = "C", default_value_t = skupper_token::site::DEFAULT_LINK_FILE_COST)]
    pub cost: u32,
    /// The name of the Secret holding the certificate, and the
    /// certificate's common name [default: NAME].
    #[arg(long, value_name = "NAME")]
    pub tls_credentials: Option<String>,
    /// Where to write the file (`-` for standard output), as for 'token
    /// create': mode 0600, a regular file replaced atomically.
    #[arg(short = 'f', long = "file", value_name = "FILE", default_value = "-")]
    pub file: PathBuf,
}

/// `link status`.
#[derive(Debug, Args)]
pub struct LinkStatusArgs {
    /// The link [default: all links].
    pub name: Option<String>,
    /// Wait up to this many seconds for the link (without a name: every
    /// link) to connect, showing progress on a terminal. Returns at once,
    /// with exit code 1, when a link will not connect; exit code 4 when
    /// the wait runs out.
    #[arg(long, value_name = "SECONDS")]
    pub wait: Option<u64>,
}

/// `link delete`.
#[derive(Debug, Args)]
pub struct LinkDeleteArgs {
    /// The link.
    pub name: String,
}

/// `revoke-access`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Revoke only this remote site (its site id or name, or a cert token
    /// name); every other site stays linked.
    #[arg(long, value_name = "ID|NAME")]
    pub site: Option<String>,
}

/// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to accept claim redemptions [default: 0.0.0.0 and the site's
    /// claims port].
    #[arg(long, value_name = "HOST:PORT", value_parser = listen_addr)]
    pub claims_listen: Option<SocketAddr>,
    /// Where to accept links from interior sites [default: 0.0.0.0 and the
    /// site's inter-router port].
    #[arg(long, value_name = "HOST:PORT", value_parser = listen_addr)]
    pub inter_router_listen: Option<SocketAddr>,
    /// Where to accept links from edge sites [default: 0.0.0.0 and the
    /// site's edge port].
    #[arg(long, value_name = "HOST:PORT", value_parser = listen_addr)]
    pub edge_listen: Option<SocketAddr>,
    /// Claims connections open at once; at the cap the oldest one not
    /// answering a request (no complete request head yet, or idle between
    /// requests) is closed to make room.
    #[arg(long, value_name = "N", default_value_t = EndpointOptions::default().max_connections, value_parser = at_least_one)]
    pub claims_max_connections: usize,
    /// Claims connections from one address not answering a request; a new
    /// one over the cap closes the oldest.
    #[arg(long, value_name = "N", default_value_t = EndpointOptions::default().max_pending_per_address, value_parser = at_least_one)]
    pub claims_max_per_address: usize,
    /// Time a claims connection has for its TLS handshake.
    #[arg(long, value_name = "DURATION", default_value_t = go(EndpointOptions::default().handshake_timeout), value_parser = positive_duration)]
    pub claims_handshake_timeout: GoDuration,
    /// Time a claims connection has, after its TLS handshake or its last
    /// answer, for its next request head.
    #[arg(long, value_name = "DURATION", default_value_t = go(EndpointOptions::default().head_timeout), value_parser = positive_duration)]
    pub claims_head_timeout: GoDuration,
    /// Incoming link connections open at once (handshaking or linked): room
    /// for 10,000 linked sites and more, within the open-file limit that
    /// `serve` raises at start. At the cap the oldest one still in its
    /// handshake is closed to make room.
    #[arg(long, value_name = "N", default_value_t = RuntimeOptions::default().max_connections, value_parser = at_least_one)]
    pub links_max_connections: usize,
    /// Incoming link connections from one address still in their
    /// handshake; a new one over the cap closes the oldest.
    #[arg(long, value_name = "N", default_value_t = RuntimeOptions::default().max_pending_per_address, value_parser = at_least_one)]
    pub links_max_per_address: usize,
    /// Time an incoming link connection has for its TLS handshake and
    /// hello.
    #[arg(long, value_name = "DURATION", default_value_t = go(RuntimeOptions::default().incoming_handshake_timeout), value_parser = positive_duration)]
    pub links_handshake_timeout: GoDuration,
    /// How the log on standard output is written: `text`, one line per
    /// event for people, or `json`, one JSON object per line for log
    /// collectors (timestamp, level, message, and the cause and count of
    /// summarised repeats).
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `serve --log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `<RFC 3339 time> <message>`, one line per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// `HOST:PORT`: an IP address (`[v6]` in brackets) or a host name that
/// resolves, and a port.
fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    let hint = "give HOST:PORT, for example 127.0.0.1:8081, [::1]:8081 or localhost:8081";
    match s.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("{s:?} resolves to no address; {hint}")),
        Err(e) => Err(format!("{e}; {hint}")),
    }
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}: give a whole number of at least 1")),
    }
}

fn positive_duration(s: &str) -> Result<GoDuration, String> {
    let d = GoDuration::parse(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be longer than 0 (for example 2s or 500ms)".into());
    }
    Ok(d)
}

/// A default from the library's options, for `--help`.
fn go(d: std::time::Duration) -> GoDuration {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| GoDuration::from_duration(d).ok())
        .unwrap_or(GoDuration::ZERO)
}
