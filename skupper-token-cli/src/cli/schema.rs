//! What commands print with `-o json` and `-o yaml`: one type per command
//! output, so the shape is stable and written down here. Keys are
//! kebab-case; a key that has no value is `null`, never left out.

use serde::Serialize;

/// One link this site made to another site (`link status`, `link status
/// NAME`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct OutgoingLink {
    /// The link name.
    pub name: String,
    /// Whether it is connected now (as the running `serve` sees it).
    pub connected: bool,
    /// `false` when it cannot connect until someone acts: its claim was
    /// refused, the remote site revoked its access, or this site's `serve`
    /// is not running (`reason` says which).
    pub will_connect: bool,
    /// The status line text output prints: `Link link1 is connected`,
    /// `Link link1 not connected (<reason>)`.
    pub status: String,
    /// Why it is not connected; `null` when it is.
    pub reason: Option<String>,
    /// The recorded state: `pending`, `connecting`, `connected`,
    /// `not-connected`, `revoked` or `failed`.
    pub state: &'static str,
    /// The id of the site it links to.
    pub remote_site_id: String,
    /// That site's name, from its answer when the link connected while
    /// this `serve` runs; `null` until then (a token names only the site
    /// id).
    pub remote_site_name: Option<String>,
    /// Where it links to: the claim URL while the claim is not redeemed,
    /// then `host:port`.
    pub target: String,
    /// The link cost.
    pub cost: u32,
    /// Since when it is connected (RFC 3339); `null` when it is not.
    pub since: Option<String>,
}

/// A link another site made to this one, while this site's `serve` runs.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct IncomingLink {
    /// The remote site's id.
    pub remote_site_id: String,
    /// The remote site's name.
    pub remote_site_name: String,
    /// The remote site's name for the link.
    pub link: String,
    /// Since when it is connected (RFC 3339).
    pub since: String,
    /// The common name of the certificate it linked with.
    pub common_name: String,
}

/// How a `link status --wait` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum WaitOutcome {
    /// Every link waited for is connected (exit code 0).
    Connected,
    /// A link cannot connect until someone acts (exit code 1).
    WillNotConnect,
    /// The wait ran out with a link still not connected (exit code 4).
    TimedOut,
}

/// The `wait` part of `link status --wait`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Wait {
    /// The `--wait` given, in seconds.
    pub seconds: u64,
    /// How long it waited, in whole seconds.
    pub waited_seconds: u64,
    /// How it ended: `connected`, `will-not-connect` or `timed-out`.
    pub outcome: WaitOutcome,
}

/// `link status NAME [--wait N]`: the link, flattened.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct LinkStatusOne {
    /// The link's keys ([`OutgoingLink`]).
    #[serde(flatten)]
    pub link: OutgoingLink,
    /// Whether this site's `serve` is running.
    pub site_running: bool,
    /// `null` without `--wait`.
    pub wait: Option<Wait>,
}

/// `link status [--wait N]`: every link, both ways.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct LinkStatusAll {
    /// Whether this site's `serve` is running (incoming links are known
    /// only while it runs).
    pub site_running: bool,
    /// The links this site made.
    pub outgoing: Vec<OutgoingLink>,
    /// The links other sites made to this one.
    pub incoming: Vec<IncomingLink>,
    /// `null` without `--wait`.
    pub wait: Option<Wait>,
}
