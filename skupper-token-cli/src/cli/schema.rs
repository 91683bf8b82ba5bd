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
    /// this `serve` runs, or from its revocation notice once it revoked
    /// the link's access; `null` until then (a token names only the site
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
    /// Link records that cannot be read (the command then exits 5).
    pub unreadable: Vec<UnreadableRecord>,
    /// `null` without `--wait`.
    pub wait: Option<Wait>,
}

/// A record that cannot be read.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct UnreadableRecord {
    /// The record's name.
    pub name: String,
    /// Why it cannot be read, naming its file.
    pub error: String,
}

/// A site: `init`, and the first keys of `status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct SiteInfo {
    /// The site id (a UUID).
    pub id: String,
    /// The site name.
    pub name: String,
    /// The namespace it is the site of.
    pub namespace: String,
    /// `interior` or `edge`.
    pub mode: String,
    /// The Skupper version it reports.
    pub version: String,
    /// Where claims are redeemed (`host:port`).
    pub claims: String,
    /// Where interior sites link to (`host:port`).
    pub inter_router: String,
    /// Where edge sites link to (`host:port`).
    pub edge: String,
    /// The CA generation (1 at `init`, one more per `revoke-access`).
    pub ca_generation: u32,
    /// When the site was created (RFC 3339).
    pub created: String,
}

/// `status`: the site, and how it is linked.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct SiteStatus {
    /// The site's keys ([`SiteInfo`]).
    #[serde(flatten)]
    pub site: SiteInfo,
    /// Distinct other sites with a live link either way (0 when `serve`
    /// is not running).
    pub linked_sites: usize,
    /// Whether this site's `serve` is running.
    pub site_running: bool,
}

/// `token create`: the token written (never its password or key).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct TokenCreated {
    /// `claim` or `cert`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The token name (the claim name for a claim token).
    pub name: String,
    /// The file it was written to.
    pub file: String,
    /// The id of this site, which the token links to.
    pub issuing_site: String,
    /// A claim token's redemption URL; `null` for a cert token.
    pub url: Option<String>,
    /// When a claim token expires (RFC 3339); `null` for a cert token or
    /// a claim that never expires.
    pub expires: Option<String>,
    /// How many links a claim token can make; `null` for a cert token or
    /// unlimited uses.
    pub uses: Option<u32>,
}

/// What `token issue` wrote.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct GrantIssued {
    /// `access-token`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The grant's name (the AccessToken's `metadata.name`).
    pub name: String,
    /// The grant's id, the last segment of its URL.
    pub id: String,
    /// The file it was written to.
    pub file: String,
    /// Where it is redeemed (`spec.url`).
    pub url: String,
    /// How many sites can redeem it.
    pub redemptions_allowed: u32,
    /// When it can no longer be redeemed (RFC 3339).
    pub expires: String,
    /// The cost of the links its redemption makes (`spec.linkCost`).
    pub link_cost: u32,
}

/// One outstanding Skupper 2.x grant (`token status`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Grant {
    /// The grant's name (its AccessToken's name).
    pub name: String,
    /// Its id, the last segment of its AccessToken's URL.
    pub id: String,
    /// How many redemptions were made.
    pub redemptions_made: u32,
    /// How many it allows.
    pub redemptions_allowed: u32,
    /// When it can no longer be redeemed (RFC 3339).
    pub expires: String,
    /// Refused redemption attempts.
    pub failed_attempts: u32,
    /// `active`, `expired` or `used up`.
    pub state: String,
    /// When it was issued (RFC 3339).
    pub created: String,
}

/// What `token inspect` says about a Skupper 2.x file (an AccessToken or a
/// Link file); never its code or key.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct V2Inspect {
    /// `access-token` or `link-file`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The AccessToken's name, or the Link file's Secret's name.
    pub name: String,
    /// An AccessToken's redemption URL; `null` for a Link file.
    pub url: Option<String>,
    /// An AccessToken's `spec.linkCost`, or the first Link's cost.
    pub cost: u32,
    /// A Link file's Links: name and endpoints (`name host:port`).
    pub links: Vec<V2InspectLink>,
    /// The CA to trust: the grant server's (AccessToken) or the remote
    /// site's (Link file).
    pub ca: Certificate,
    /// A Link file's certificate; `null` for an AccessToken.
    pub certificate: Option<Certificate>,
}

/// One Link of a Link file (`token inspect`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct V2InspectLink {
    /// The Link's name.
    pub name: String,
    /// Its endpoints: `inter-router 192.0.2.10:55671`.
    pub endpoints: Vec<String>,
}

/// What `link generate -f FILE` wrote.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct LinkGenerated {
    /// `link-file`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The names of its Links.
    pub links: Vec<String>,
    /// The name of its Secret, and its certificate's common name.
    pub tls_credentials: String,
    /// The file it was written to.
    pub file: String,
    /// The cost of the link it makes.
    pub cost: u32,
}

/// One outstanding claim (`token status`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Claim {
    /// The claim (token) name.
    pub name: String,
    /// When it expires (RFC 3339); `null`: never.
    pub expires: Option<String>,
    /// Uses left; `null`: unlimited.
    pub uses_remaining: Option<u32>,
    /// Uses it was made with; `null`: unlimited.
    pub uses_allowed: Option<u32>,
    /// Links made with it so far.
    pub claims_made: u32,
    /// Redemptions refused (wrong password, expired, used up), counted
    /// best effort.
    pub failed_attempts: u32,
    /// The latest refused redemption; `null`: none.
    pub last_failed_attempt: Option<FailedAttempt>,
    /// `active`, `expired`, `used up`, ... as the STATE column shows it.
    pub state: String,
    /// When it was made (RFC 3339).
    pub created: String,
}

/// A refused redemption of a claim.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct FailedAttempt {
    /// When (RFC 3339).
    pub at: String,
    /// The site id the request gave.
    pub site: String,
    /// Why it was refused.
    pub reason: String,
}

/// A certificate the current CA issued, in `token status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct IssuedCertificate {
    /// `cert-token` or `claim`: how it was issued.
    pub via: &'static str,
    /// The cert token's or the claim's name.
    pub token: String,
    /// Its common name: the redeeming site's id, or the cert token's name.
    pub issued_to: String,
    /// Serial number, uppercase hex.
    pub serial: String,
    /// When it was issued (RFC 3339).
    pub issued: String,
    /// When it expires (RFC 3339).
    pub expires: String,
    /// `valid`, `expired`, `revoked` or `old CA`.
    pub state: &'static str,
}

/// `token status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct TokenStatus {
    /// The outstanding claims, oldest first.
    pub claims: Vec<Claim>,
    /// The outstanding Skupper 2.x grants, oldest first.
    pub grants: Vec<Grant>,
    /// The certificates the current CA issued, oldest first.
    pub certificates: Vec<IssuedCertificate>,
}

/// `token delete`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct TokenDeleted {
    /// The claim token's name.
    pub removed: String,
}

/// A certificate in `token inspect`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Certificate {
    /// Its subject.
    pub subject: String,
    /// Its issuer.
    pub issuer: String,
    /// Its serial number (hex).
    pub serial: String,
    /// Its key (`ECDSA P-256`, `RSA 2048`, ...).
    pub key: String,
    /// The algorithm it is signed with.
    pub signature: String,
    /// Valid from (RFC 3339).
    pub not_before: String,
    /// Valid until (RFC 3339).
    pub not_after: String,
    /// SHA-256 of its DER, hex.
    pub fingerprint_sha256: String,
}

/// `token inspect`: what a token file is (never its password or key).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct TokenInspect {
    /// `claim` or `cert`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The token name.
    pub name: String,
    /// The id of the site that made it.
    pub issuing_site: String,
    /// That site's Skupper version; empty when the file does not say.
    pub site_version: String,
    /// The issuing site's CA.
    pub ca: Certificate,
    /// Claim tokens: where to redeem it; `null` for a cert token.
    pub url: Option<String>,
    /// Claim tokens: when it expires (RFC 3339); `null` for a cert token,
    /// a claim that never expires, or a file from before Skupper 1.8.
    pub expires: Option<String>,
    /// Cert tokens: where interior sites link (`host:port`); `null` for a
    /// claim token.
    pub inter_router: Option<String>,
    /// Cert tokens: where edge sites link (`host:port`); `null` for a
    /// claim token.
    pub edge: Option<String>,
    /// Cert tokens: the certificate it carries; `null` for a claim token.
    pub certificate: Option<Certificate>,
}

/// `link create`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct LinkCreated {
    /// The link name.
    pub name: String,
    /// The id of the site it links to.
    pub remote_site_id: String,
    /// Where it links to (`host:port`).
    pub target: String,
    /// The link cost.
    pub cost: u32,
    /// Its state now ([`OutgoingLink::state`]); `connecting` once a claim
    /// is redeemed.
    pub state: &'static str,
    /// The link it replaced (`--replace`); `null` when none.
    pub replaced: Option<String>,
}

/// `link delete`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct LinkDeleted {
    /// The link name.
    pub removed: String,
    /// The id of the site it linked to (`null` when its record was damaged).
    pub remote_site_id: Option<String>,
}

/// `link ping`: the link the pings went over, and their round trips.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Ping {
    /// `outgoing` (a link this site made) or `incoming` (one another site
    /// made to this one).
    pub direction: skupper_token_cli::links::Direction,
    /// The link's name (for an incoming link, the remote site's name for
    /// it).
    pub link: String,
    /// The remote site's id.
    pub remote_site_id: String,
    /// The remote site's name; `null` when the running site does not
    /// know it.
    pub remote_site_name: Option<String>,
    /// Each ping's round trip, in microseconds.
    pub rtt_us: Vec<u64>,
}

/// A certificate `revoke-access --site` revoked.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct RevokedCertificate {
    /// Its serial number (hex).
    pub serial: String,
    /// Its common name (the remote site's id or name).
    pub common_name: String,
}

/// `revoke-access [--site ID|NAME]`, told apart by `scope`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "scope", rename_all = "kebab-case")]
pub(crate) enum Revoked {
    /// `revoke-access`: a new CA; every claim void, every incoming link
    /// dropped.
    #[serde(rename_all = "kebab-case")]
    All {
        /// The new CA generation.
        ca_generation: u32,
        /// Claim records deleted (also used-up and expired ones).
        claims_deleted: usize,
        /// Of those, the claim tokens that could still have been used.
        claims_voided: usize,
        /// Grant records deleted (also used-up and expired ones).
        grants_deleted: usize,
        /// Of those, the AccessTokens that could still have been redeemed.
        grants_voided: usize,
        /// Incoming links dropped.
        incoming_dropped: usize,
    },
    /// `revoke-access --site`: one remote site's certificates.
    #[serde(rename_all = "kebab-case")]
    Site {
        /// The `--site` given.
        site: String,
        /// The certificates no longer accepted.
        certificates: Vec<RevokedCertificate>,
    },
}

/// What `-o json|yaml` prints on standard output when a command fails
/// (the message also goes to standard error, and the exit code is the
/// failure's): the command's own object when the failure has one (as
/// `link status --wait` does), with an `error` key added.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Failed {
    /// The command's object, flattened; absent for most failures.
    #[serde(flatten)]
    pub object: Option<serde_json::Value>,
    /// What went wrong.
    pub error: FailedError,
}

/// The `error` key of [`Failed`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct FailedError {
    /// The error and its causes, as standard error shows them.
    pub message: String,
    /// What to do about it; `null` when there is no hint.
    pub hint: Option<String>,
    /// The exit code: 1 refused, 2 usage, 3 no site, 4 remote unreachable
    /// or a wait ran out, 5 storage.
    pub exit_code: u8,
}

impl Certificate {
    /// From what the core reads of a certificate.
    pub(crate) fn from_info(info: &skupper_token::pki::CertificateInfo) -> Certificate {
        Certificate {
            subject: info.subject.clone(),
            issuer: info.issuer.clone(),
            serial: info.serial_hex.clone(),
            key: info.key_algorithm.clone(),
            signature: info.signature_algorithm.clone(),
            not_before: super::output::rfc3339(info.not_before),
            not_after: super::output::rfc3339(info.not_after),
            fingerprint_sha256: info.fingerprint_sha256.clone(),
        }
    }
}

impl SiteInfo {
    /// From the site's record.
    pub(crate) fn from_record(r: &skupper_token::site::SiteRecord) -> SiteInfo {
        SiteInfo {
            id: r.id.clone(),
            name: r.name.clone(),
            namespace: r.namespace.clone(),
            mode: r.mode.to_string(),
            version: r.version.clone(),
            claims: r.claims.to_string(),
            inter_router: r.inter_router.to_string(),
            edge: r.edge.to_string(),
            ca_generation: r.ca_generation,
            created: super::output::rfc3339(r.created_at),
        }
    }
}
