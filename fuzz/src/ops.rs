//! The `ops` target: an arbitrary sequence of operations over the in-memory
//! harness, with a model of what must hold after every step.
//!
//! The model watches claims and certificates from the outside:
//!
//! - a redemption is counted once per certificate serial issued from a
//!   claim, whoever saw it (a direct `redeem_claim`, a link's credentials,
//!   or the issuing site's issued-certificate records);
//! - a claim never has more successes than uses, never succeeds at or after
//!   its expiry, and never after its site revoked access;
//! - a wrong password never redeems;
//! - likewise for Skupper 2.x grants (redeemed directly with
//!   `redeem_grant`): never more redemptions than allowed, none at or
//!   after expiry or after the site revoked access, none with a wrong
//!   code, and a wrong code is refused as such whatever the grant's state;
//! - a certificate revoked by `revoke_access` or `revoke_peer` never
//!   authenticates again (and no live incoming link holds one), while every
//!   other unexpired certificate of the current CA still does;
//! - the store's incoming-link records and the site's own live links
//!   agree (a record may only lapse when time moved on without a tick);
//!   time moves without running the network (`advance`, as if every site
//!   was suspended), and a tick runs it for a few seconds;
//! - `status(now).linked_sites` is the number of distinct remote sites with
//!   a connected outgoing link or a live incoming-link record, and right
//!   after a tick, outgoing `connected` links and incoming links match one
//!   to one.

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::{Arbitrary, Unstructured};
use skupper_token::claim::{RedeemError, RedeemRequest};
use skupper_token::duration::GoDuration;
use skupper_token::harness::{HarnessError, Network};
use skupper_token::pki::{certificate_info, pem_to_der};
use skupper_token::site::{
    IssuedVia, LinkError, LinkOptions, RevokeError, SiteConfig, SiteError, SiteMode, TokenOptions,
};
use skupper_token::token::{CertToken, Token};
use skupper_token::v2::{GrantError, GrantOptions, GrantRedemption};
use skupper_token::version::VERSION;
use time::{Duration, OffsetDateTime};

use crate::START;

/// At most this many operations per input, so one execution stays fast.
pub const MAX_OPS: usize = 32;

/// The sites: three interior, one edge.
pub const SITES: [&str; 4] = ["west", "east", "north", "edge"];
const INTERIOR: usize = 3;
const CERT_NAMES: [&str; 4] = ["skupper", "alpha", "beta", "gamma"];

/// One operation. Indices are taken modulo what exists.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A claim token on an interior site: `uses % 4` uses (0 = unlimited),
    /// expiring after `5 * expiry` seconds (0 = never).
    CreateClaim {
        /// Issuing site.
        site: u8,
        /// Uses.
        uses: u8,
        /// Expiry in units of 5 s.
        expiry: u8,
    },
    /// A cert token on an interior site.
    CreateCert {
        /// Issuing site.
        site: u8,
        /// Which of four names.
        name: u8,
    },
    /// `Site::redeem_claim` directly, as site `from`.
    Redeem {
        /// Which claim token.
        token: u8,
        /// The requesting site.
        from: u8,
        /// Whether to send the right password.
        right_password: bool,
    },
    /// Moves the clock `secs % 1201` seconds on.
    Advance {
        /// Seconds.
        secs: u16,
    },
    /// A link from `site` with one of the tokens made so far.
    CreateLink {
        /// The linking site.
        site: u8,
        /// Which token.
        token: u8,
    },
    /// Deletes one of the site's links.
    DeleteLink {
        /// The site.
        site: u8,
        /// Which link.
        link: u8,
    },
    /// One heartbeat round.
    Tick,
    /// `revoke_access` on an interior site.
    RevokeAccess {
        /// The site.
        site: u8,
    },
    /// `revoke_peer` on an interior site.
    RevokePeer {
        /// The site.
        site: u8,
        /// A site id, a site name, a cert token name, or an unknown name.
        peer: u8,
    },
    /// A Skupper 2.x grant on an interior site: `1 + allowed % 3`
    /// redemptions within `60 * (1 + window % 10)` seconds.
    IssueGrant {
        /// Issuing site.
        site: u8,
        /// Redemptions allowed.
        allowed: u8,
        /// Expiration window in minutes, modulo 10, plus 1.
        window: u8,
    },
    /// `Site::redeem_grant` directly, as site `from`.
    RedeemGrant {
        /// Which grant.
        grant: u8,
        /// The redeeming site (the subject).
        from: u8,
        /// Whether to send the right code.
        right_code: bool,
    },
    /// Cuts a site off the network or puts it back.
    Reachable {
        /// The site.
        site: u8,
        /// Reachable or not.
        up: bool,
    },
}

/// A bounded sequence of operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The operations, at most [`MAX_OPS`].
    pub ops: Vec<Op>,
}

impl<'a> Arbitrary<'a> for Script {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut ops = Vec::new();
        while ops.len() < MAX_OPS && !u.is_empty() {
            ops.push(Op::arbitrary(u)?);
        }
        Ok(Script { ops })
    }
}

struct ClaimModel {
    issuer: usize,
    uses: u32,
    expires_at: Option<OffsetDateTime>,
    /// The issuer revoked access after this claim was made.
    void: bool,
    /// Serials of the certificates issued from this claim.
    serials: BTreeSet<String>,
}

struct GrantModel {
    issuer: usize,
    allowed: u32,
    expires_at: OffsetDateTime,
    void: bool,
    token: skupper_token::v2::AccessToken,
    /// Serials of the certificates issued by redeeming it.
    serials: BTreeSet<String>,
}

struct CertModel {
    issuer: usize,
    /// The CA that issued it (from its token), trimmed PEM.
    ca_pem: String,
    der: Vec<u8>,
    common_name: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    revoked: bool,
}

/// What the model knows; see the module docs.
pub struct Model {
    net: Network,
    ids: Vec<String>,
    /// Every token made, and for claim tokens their key in `claims`.
    tokens: Vec<(usize, Token)>,
    /// Claims by (issuing site, claim name).
    claims: BTreeMap<(usize, String), ClaimModel>,
    /// Claim tokens, in order (for `Redeem`).
    claim_tokens: Vec<(usize, skupper_token::token::ClaimToken)>,
    /// Every certificate seen, by serial.
    certs: BTreeMap<String, CertModel>,
    /// Grants, in order, by (issuing site, grant id) in `grant_ids`.
    grants: BTreeMap<(usize, String), GrantModel>,
    grant_ids: Vec<(usize, String)>,
    /// The current CA of each interior site, PEM.
    current_ca: Vec<String>,
    /// Link credentials already looked at.
    seen_credentials: BTreeSet<String>,
    /// Wrong passwords that were refused (for the report).
    pub wrong_password_refusals: usize,
}

fn expect_ok<T>(what: &str, r: Result<T, HarnessError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what} failed unexpectedly: {e}"),
    }
}

impl Model {
    /// A fresh network with the four sites.
    pub fn new() -> Model {
        let net = Network::starting_at(0x0f5, START);
        let mut ids = Vec::new();
        for (i, name) in SITES.iter().enumerate() {
            let mode = if i < INTERIOR {
                SiteMode::Interior
            } else {
                SiteMode::Edge
            };
            let site = expect_ok(
                "add_site",
                net.add_site_with(SiteConfig::new(*name).mode(mode)),
            );
            ids.push(site.id().to_owned());
        }
        let mut m = Model {
            net,
            ids,
            tokens: Vec::new(),
            claims: BTreeMap::new(),
            claim_tokens: Vec::new(),
            certs: BTreeMap::new(),
            grants: BTreeMap::new(),
            grant_ids: Vec::new(),
            current_ca: Vec::new(),
            seen_credentials: BTreeSet::new(),
            wrong_password_refusals: 0,
        };
        for i in 0..INTERIOR {
            let ca = m.ca_pem(i).trim().to_owned();
            m.current_ca.push(ca);
        }
        m
    }

    fn ca_pem(&self, site: usize) -> String {
        let record = expect_ok("site", self.net.site(SITES[site]))
            .record()
            .expect("site record");
        record.ca.expect("interior site has a CA").cert_pem
    }

    fn site_of_id(&self, id: &str) -> Option<usize> {
        self.ids.iter().position(|i| i == id)
    }

    /// The network (for tests).
    pub fn net(&self) -> &Network {
        &self.net
    }

    /// Records a certificate from a cert token (issued by a cert token,
    /// a direct redemption or a link's redemption) and, when it came from a
    /// claim, counts the redemption.
    fn see_cert_token(&mut self, token: &CertToken) {
        let Some(issuer) = self.site_of_id(&token.issuer_site_id) else {
            panic!(
                "a cert token names an unknown issuer {:?}",
                token.issuer_site_id
            );
        };
        let der = pem_to_der(&token.cert_pem).expect("issued certificates are PEM");
        let info = certificate_info(&der).expect("issued certificates parse");
        let serial = info.serial_hex.clone();
        // A redeemed claim's cert token is named after the site that
        // redeemed it, not after the claim: redemptions are counted from
        // the issuer's records (observe) and by the Redeem step.
        if self.certs.contains_key(&serial) {
            return;
        }
        // A certificate from an older CA than the issuer's current one is
        // revoked by revoke_access.
        let revoked = token.ca_pem.trim() != self.current_ca[issuer].trim();
        self.certs.insert(
            serial,
            CertModel {
                issuer,
                ca_pem: token.ca_pem.trim().to_owned(),
                der,
                common_name: info.common_name.unwrap_or_default(),
                not_before: info.not_before,
                not_after: info.not_after,
                revoked,
            },
        );
    }

    fn count_redemption(
        &mut self,
        issuer: usize,
        claim: &str,
        serial: &str,
        via: &str,
        issued_at: Option<OffsetDateTime>,
    ) {
        let now = self.net.now();
        let Some(c) = self.claims.get_mut(&(issuer, claim.to_owned())) else {
            panic!(
                "a certificate was issued from claim {claim:?} that {} never made",
                SITES[issuer]
            );
        };
        if !c.serials.insert(serial.to_owned()) {
            return;
        }
        if let Some(at) = issued_at {
            assert_eq!(at, now, "certificate {serial} is recorded as issued at another time than the step that issued it");
        }
        assert!(
            !c.void,
            "claim {claim:?} of {} redeemed (seen via {via}) after the site revoked access",
            SITES[issuer]
        );
        if let Some(at) = c.expires_at {
            assert!(
                now < at,
                "claim {claim:?} of {} redeemed (seen via {via}) at {now}, at or after its expiry {at}",
                SITES[issuer]
            );
        }
        if c.uses > 0 {
            assert!(
                c.serials.len() <= c.uses as usize,
                "claim {claim:?} of {} allows {} uses but was redeemed {} times (last seen via {via})",
                SITES[issuer],
                c.uses,
                c.serials.len()
            );
        }
    }

    /// Looks at every site's links and issued-certificate records for
    /// redemptions and certificates not seen yet.
    fn observe(&mut self) {
        for (s, name) in SITES.iter().enumerate() {
            let site = expect_ok("site", self.net.site(name));
            for link in site.links().expect("links") {
                // Decode each distinct credentials file once.
                match link.credentials() {
                    Some(c) if !self.seen_credentials.contains(c) => {
                        self.seen_credentials.insert(c.to_owned());
                    }
                    _ => continue,
                }
                if let Some(cert) = link.cert_token().expect("stored credentials decode") {
                    self.see_cert_token(&cert);
                }
            }
            if s < INTERIOR {
                for issued in site.issued().expect("issued") {
                    if let IssuedVia::Grant { grant, .. } = &issued.via {
                        let Some(g) = self.grants.get(&(s, grant.clone())) else {
                            panic!("a certificate was issued from grant {grant:?} that {name} never made");
                        };
                        assert!(
                            g.serials.contains(&issued.serial),
                            "grant {grant:?} of {name} issued {} which no redemption returned",
                            issued.serial
                        );
                    }
                    if let IssuedVia::Claim { name } = &issued.via {
                        self.count_redemption(
                            s,
                            name,
                            &issued.serial,
                            "the issued records",
                            Some(issued.issued_at),
                        );
                    }
                }
            }
        }
    }

    /// Runs one operation and checks every invariant.
    pub fn step(&mut self, op: &Op) {
        let incoming_before: Vec<Vec<skupper_token::site::IncomingLink>> = (0..SITES.len())
            .map(|s| expect_ok("site", self.net.site(SITES[s])).incoming())
            .collect();
        let mut ticked = false;
        match *op {
            Op::CreateClaim { site, uses, expiry } => {
                let s = usize::from(site) % INTERIOR;
                let uses = u32::from(uses % 4);
                let expiry = u32::from(expiry) * 5;
                let options = TokenOptions::claim()
                    .uses(uses)
                    .expiry(GoDuration::from_secs(expiry));
                let token = expect_ok("create claim", self.net.create_token(SITES[s], &options));
                let Token::Claim(claim) = &token else {
                    panic!("asked for a claim token, got {}", token.type_label());
                };
                let expected =
                    (expiry > 0).then(|| self.net.now() + Duration::seconds(expiry.into()));
                assert_eq!(claim.expires_at, expected, "claim expiry");
                let prev = self.claims.insert(
                    (s, claim.name.clone()),
                    ClaimModel {
                        issuer: s,
                        uses,
                        expires_at: claim.expires_at,
                        void: false,
                        serials: BTreeSet::new(),
                    },
                );
                assert!(prev.is_none(), "claim name {:?} reused", claim.name);
                self.claim_tokens.push((s, claim.clone()));
                self.tokens.push((s, token));
            }
            Op::CreateCert { site, name } => {
                let s = usize::from(site) % INTERIOR;
                let name = CERT_NAMES[usize::from(name) % CERT_NAMES.len()];
                let token = expect_ok(
                    "create cert token",
                    self.net
                        .create_token(SITES[s], &TokenOptions::cert().name(name)),
                );
                let Token::Cert(cert) = &token else {
                    panic!("asked for a cert token, got {}", token.type_label());
                };
                let cert = cert.clone();
                self.see_cert_token(&cert);
                self.tokens.push((s, token));
            }
            Op::Redeem {
                token,
                from,
                right_password,
            } => {
                if self.claim_tokens.is_empty() {
                    return self.check(false);
                }
                let (s, claim) =
                    self.claim_tokens[usize::from(token) % self.claim_tokens.len()].clone();
                let from = usize::from(from) % SITES.len();
                let mut password = claim.password.expose().as_bytes().to_vec();
                if !right_password {
                    match password.last_mut() {
                        Some(b) => *b ^= 1,
                        None => password.push(b'x'),
                    }
                }
                let request = RedeemRequest {
                    claim: claim.name.clone(),
                    password,
                    site_id: self.ids[from].clone(),
                    site_version: VERSION.into(),
                };
                let site = expect_ok("site", self.net.site(SITES[s]));
                let now = self.net.now();
                let result = self
                    .net
                    .with_rng(|rng| site.redeem_claim(&request, now, rng));
                match result {
                    Ok(cert) => {
                        assert!(
                            right_password,
                            "a wrong password redeemed claim {:?}",
                            claim.name
                        );
                        // Named after the requesting site, as in Skupper.
                        assert_eq!(cert.name, request.site_id);
                        self.see_cert_token(&cert);
                        let serial = certificate_info(
                            &pem_to_der(&cert.cert_pem).expect("issued certificate PEM"),
                        )
                        .expect("issued certificate")
                        .serial_hex;
                        self.count_redemption(s, &claim.name, &serial, "a redemption", None);
                        assert!(self.claims[&(s, claim.name.clone())]
                            .serials
                            .contains(&serial));
                    }
                    Err(RedeemError::WrongPassword { .. }) => {
                        assert!(!right_password, "the right password was refused as wrong");
                        self.wrong_password_refusals += 1;
                    }
                    Err(RedeemError::NoSuchClaim { .. }) => {
                        assert!(
                            self.claims[&(s, claim.name.clone())].void,
                            "claim {:?} is gone although its site did not revoke access",
                            claim.name
                        );
                    }
                    Err(RedeemError::Expired { .. }) => {
                        assert!(
                            right_password,
                            "a wrong password learnt that the claim expired"
                        );
                        let at = self.claims[&(s, claim.name.clone())].expires_at;
                        assert!(
                            at.is_some_and(|at| now >= at),
                            "refused as expired at {now}, expiry {at:?}"
                        );
                    }
                    Err(RedeemError::UsedUp { .. }) => {
                        assert!(
                            right_password,
                            "a wrong password learnt that the claim is used up"
                        );
                        let c = &self.claims[&(s, claim.name.clone())];
                        assert!(
                            c.uses > 0 && c.serials.len() >= c.uses as usize,
                            "refused as used up after {} of {} uses",
                            c.serials.len(),
                            c.uses
                        );
                    }
                    Err(e) => panic!("unexpected redemption error: {e}"),
                }
            }
            Op::Advance { secs } => {
                self.net.advance(Duration::seconds(i64::from(secs % 1201)));
            }
            Op::CreateLink { site, token } => {
                if self.tokens.is_empty() {
                    return self.check(false);
                }
                let s = usize::from(site) % SITES.len();
                let (_, t) = &self.tokens[usize::from(token) % self.tokens.len()];
                let file = t.encode();
                match self
                    .net
                    .create_link(SITES[s], file.as_bytes(), &LinkOptions::default())
                {
                    Ok(link) => {
                        if let Some(cert) = link.cert_token().expect("credentials decode") {
                            self.see_cert_token(&cert);
                        }
                    }
                    Err(HarnessError::Site(SiteError::Link(
                        LinkError::LinkToSelf
                        | LinkError::AlreadyConnected { .. }
                        | LinkError::ClaimRedemption { .. },
                    ))) => {}
                    Err(e) => panic!("create link failed unexpectedly: {e}"),
                }
            }
            Op::DeleteLink { site, link } => {
                let s = usize::from(site) % SITES.len();
                let links = expect_ok("site", self.net.site(SITES[s]))
                    .links()
                    .expect("links");
                if !links.is_empty() {
                    let name = &links[usize::from(link) % links.len()].name;
                    expect_ok("delete link", self.net.delete_link(SITES[s], name));
                }
            }
            Op::Tick => {
                // Long enough for a connection whose other end is gone (its
                // goodbye lost while a site was cut off, a linger that ran
                // out) to notice by the dead-peer timeout: after it, both
                // ends of every link agree.
                let timing = self.net.timing();
                expect_ok("tick", self.net.run_for(timing.dead_after + timing.linger));
                ticked = true;
            }
            Op::RevokeAccess { site } => {
                let s = usize::from(site) % INTERIOR;
                // Certificates are found through links and issued records;
                // look once more before the records are deleted.
                self.observe();
                let r = expect_ok("revoke access", self.net.revoke_access(SITES[s]));
                self.current_ca[s] = self.ca_pem(s).trim().to_owned();
                for c in self.claims.values_mut().filter(|c| c.issuer == s) {
                    c.void = true;
                }
                for g in self.grants.values_mut().filter(|g| g.issuer == s) {
                    g.void = true;
                }
                for c in self.certs.values_mut().filter(|c| c.issuer == s) {
                    c.revoked = true;
                }
                assert!(
                    expect_ok("site", self.net.site(SITES[s]))
                        .incoming()
                        .is_empty(),
                    "incoming links survived revoke-access"
                );
                assert_eq!(r.incoming_dropped.len(), incoming_before[s].len());
            }
            Op::RevokePeer { site, peer } => {
                let s = usize::from(site) % INTERIOR;
                let peer = match usize::from(peer) % 13 {
                    i @ 0..=3 => self.ids[i].clone(),
                    i @ 4..=7 => SITES[i - 4].to_owned(),
                    i @ 8..=11 => CERT_NAMES[i - 8].to_owned(),
                    _ => "nobody".to_owned(),
                };
                // What must be revoked: every certificate of the current CA
                // named `peer`, and those of live links from `peer`.
                let mut expected: BTreeSet<String> = self
                    .certs
                    .iter()
                    .filter(|(_, c)| {
                        c.issuer == s && c.common_name == peer && c.ca_pem == self.current_ca[s]
                    })
                    .map(|(serial, _)| serial.clone())
                    .collect();
                for l in &incoming_before[s] {
                    if l.peer_site_id == peer || l.peer_site_name == peer {
                        expected.insert(l.certificate.serial_hex.clone());
                    }
                }
                match self.net.revoke_peer(SITES[s], &peer) {
                    Ok(r) => {
                        let got: BTreeSet<String> =
                            r.revoked.iter().map(|c| c.serial.clone()).collect();
                        for serial in &expected {
                            assert!(
                                got.contains(serial),
                                "revoke_peer({peer:?}) on {} left {serial} out",
                                SITES[s]
                            );
                        }
                        for serial in &got {
                            if let Some(c) = self.certs.get_mut(serial) {
                                c.revoked = true;
                            }
                        }
                    }
                    Err(HarnessError::Site(SiteError::Revoke(RevokeError::UnknownPeer {
                        ..
                    }))) => {
                        assert!(
                            expected.is_empty(),
                            "revoke_peer({peer:?}) on {} said unknown peer, but it issued {expected:?}",
                            SITES[s]
                        );
                    }
                    Err(e) => panic!("revoke peer failed unexpectedly: {e}"),
                }
            }
            Op::IssueGrant {
                site,
                allowed,
                window,
            } => {
                let s = usize::from(site) % INTERIOR;
                let options = GrantOptions {
                    redemptions_allowed: 1 + u32::from(allowed % 3),
                    expiration_window: Duration::minutes(1 + i64::from(window % 10)),
                    ..GrantOptions::new(format!("grant{}", self.grant_ids.len()))
                };
                let (grant, token) =
                    expect_ok("issue grant", self.net.issue_grant(SITES[s], &options));
                assert_eq!(grant.expires_at, self.net.now() + options.expiration_window);
                self.grant_ids.push((s, grant.id.clone()));
                self.grants.insert(
                    (s, grant.id.clone()),
                    GrantModel {
                        issuer: s,
                        allowed: options.redemptions_allowed,
                        expires_at: grant.expires_at,
                        void: false,
                        token,
                        serials: BTreeSet::new(),
                    },
                );
            }
            Op::RedeemGrant {
                grant,
                from,
                right_code,
            } => {
                if self.grant_ids.is_empty() {
                    return self.check(false);
                }
                let key = self.grant_ids[usize::from(grant) % self.grant_ids.len()].clone();
                let from = usize::from(from) % SITES.len();
                let (s, token) = {
                    let g = &self.grants[&key];
                    (g.issuer, g.token.clone())
                };
                let mut code = token.code.expose().as_bytes().to_vec();
                if !right_code {
                    match code.last_mut() {
                        Some(b) => *b ^= 1,
                        None => code.push(b'x'),
                    }
                }
                let request = GrantRedemption {
                    grant: key.1.clone(),
                    code,
                    name: Some(token.name.clone()),
                    subject: Some(self.ids[from].clone()),
                };
                let site = expect_ok("site", self.net.site(SITES[s]));
                let now = self.net.now();
                let result = self
                    .net
                    .with_rng(|rng| site.redeem_grant(&request, now, rng));
                let g = &self.grants[&key];
                match result {
                    Ok(links) => {
                        assert!(right_code, "a wrong code redeemed grant {:?}", key.1);
                        assert!(!g.void, "grant {:?} redeemed after revoke-access", key.1);
                        assert!(
                            now < g.expires_at,
                            "grant {:?} redeemed at {now}, expired at {}",
                            key.1,
                            g.expires_at
                        );
                        assert!(
                            g.serials.len() < g.allowed as usize,
                            "grant {:?} allows {} redemptions but was redeemed once more",
                            key.1,
                            g.allowed
                        );
                        let der =
                            pem_to_der(&links.secret.cert_pem).expect("issued certificate PEM");
                        let info = certificate_info(&der).expect("issued certificate");
                        assert_eq!(info.common_name.as_deref(), Some(self.ids[from].as_str()));
                        let revoked = links.secret.ca_pem.trim() != self.current_ca[s].trim();
                        assert!(
                            !revoked,
                            "a grant redemption issued a certificate of an old CA"
                        );
                        self.certs.insert(
                            info.serial_hex.clone(),
                            CertModel {
                                issuer: s,
                                ca_pem: links.secret.ca_pem.trim().to_owned(),
                                der,
                                common_name: self.ids[from].clone(),
                                not_before: info.not_before,
                                not_after: info.not_after,
                                revoked: false,
                            },
                        );
                        let g = self.grants.get_mut(&key).expect("grant");
                        g.serials.insert(info.serial_hex);
                    }
                    Err(GrantError::WrongCode { .. }) => {
                        assert!(!right_code, "the right code was refused as wrong");
                    }
                    Err(GrantError::NoSuchGrant { .. }) => {
                        assert!(
                            g.void,
                            "grant {:?} is gone although its site did not revoke access",
                            key.1
                        );
                    }
                    Err(GrantError::Expired { .. }) => {
                        assert!(right_code, "a wrong code learnt that the grant expired");
                        assert!(
                            now >= g.expires_at,
                            "refused as expired at {now}, expiry {}",
                            g.expires_at
                        );
                    }
                    Err(GrantError::UsedUp { .. }) => {
                        assert!(right_code, "a wrong code learnt that the grant is used up");
                        assert_eq!(
                            g.serials.len(),
                            g.allowed as usize,
                            "refused as used up too early"
                        );
                    }
                    Err(e) => panic!("unexpected grant redemption error: {e}"),
                }
            }
            Op::Reachable { site, up } => {
                let s = usize::from(site) % SITES.len();
                expect_ok("set reachable", self.net.set_reachable(SITES[s], up));
            }
        }
        self.check(ticked);
    }

    /// Checks every invariant at the current time.
    fn check(&mut self, ticked: bool) {
        self.observe();
        let now = self.net.now();
        // Certificates: revoked ones never authenticate; the others do while
        // they are valid.
        for (serial, c) in &self.certs {
            let site = expect_ok("site", self.net.site(SITES[c.issuer]));
            let verdict = site.authenticate_peer(&[&c.der], now);
            if c.revoked {
                assert!(
                    verdict.is_err(),
                    "revoked certificate {serial} (CN {:?}) of {} authenticated at {now}",
                    c.common_name,
                    SITES[c.issuer]
                );
            } else if now >= c.not_before && now <= c.not_after {
                if let Err(e) = verdict {
                    panic!(
                        "certificate {serial} (CN {:?}) of {} was not revoked but is refused: {e}",
                        c.common_name, SITES[c.issuer]
                    );
                }
            }
        }
        // Claims the site still has never show more redemptions than uses.
        for (s, name) in SITES.iter().enumerate().take(INTERIOR) {
            let site = expect_ok("site", self.net.site(name));
            let generation = site.record().expect("record").ca_generation;
            for claim in site.claims().expect("claims") {
                assert_eq!(
                    claim.ca_generation, generation,
                    "a claim of an older CA generation survived revoke-access"
                );
                if let Some(allowed) = claim.uses_allowed {
                    assert!(claim.claims_made <= allowed, "{claim:?}");
                }
                if let Some(model) = self.claims.get(&(s, claim.name.clone())) {
                    assert_eq!(
                        claim.claims_made as usize,
                        model.serials.len(),
                        "claim {:?}: the site counts {} redemptions, the model saw {}",
                        claim.name,
                        claim.claims_made,
                        model.serials.len()
                    );
                }
            }
        }
        // Grants never show more redemptions than allowed, and agree with
        // the model.
        for (s, name) in SITES.iter().enumerate().take(INTERIOR) {
            let site = expect_ok("site", self.net.site(name));
            let generation = site.record().expect("record").ca_generation;
            for grant in site.grants().expect("grants") {
                assert_eq!(
                    grant.ca_generation, generation,
                    "a grant of an older CA survived revoke-access"
                );
                assert!(
                    grant.redemptions_made <= grant.redemptions_allowed,
                    "{grant:?}"
                );
                let model = &self.grants[&(s, grant.id.clone())];
                assert_eq!(
                    grant.redemptions_made as usize,
                    model.serials.len(),
                    "{grant:?}"
                );
            }
        }
        // Incoming links and status.
        let mut outgoing: BTreeSet<(usize, usize, String)> = BTreeSet::new();
        let mut incoming: BTreeSet<(usize, usize, String)> = BTreeSet::new();
        for (s, name) in SITES.iter().enumerate() {
            let site = expect_ok("site", self.net.site(name));
            let links = site.links().expect("links");
            let live = site.incoming();
            for l in &live {
                let Some(c) = self.certs.get(&l.certificate.serial_hex) else {
                    panic!(
                        "{} has an incoming link with a certificate never issued through the model: {:?}",
                        SITES[s], l.certificate
                    );
                };
                assert_eq!(c.issuer, s, "incoming link with another site's certificate");
                assert!(
                    !c.revoked,
                    "{} keeps an incoming link {:?} from {} with revoked certificate {}",
                    SITES[s], l.link, l.peer_site_name, l.certificate.serial_hex
                );
                if let Some(from) = self.site_of_id(&l.peer_site_id) {
                    incoming.insert((from, s, l.link.clone()));
                }
            }
            let mut remote: BTreeSet<&str> = links
                .iter()
                .filter(|l| l.state().is_connected())
                .map(|l| l.remote_site_id.as_str())
                .collect();
            let now = self.net.now();
            let records = site.incoming_links(now).expect("incoming records");
            for r in &records {
                assert!(
                    live.iter().any(|l| l.peer_site_id == r.peer_site_id
                        && l.link == r.link
                        && l.certificate.serial_hex == r.certificate_serial),
                    "{} has a live incoming-link record the site does not hold: {r:?}",
                    SITES[s]
                );
            }
            if ticked {
                assert_eq!(
                    records.len(),
                    live.len(),
                    "{}: right after a tick every incoming link has a live record",
                    SITES[s]
                );
            }
            remote.extend(records.iter().map(|r| r.peer_site_id.as_str()));
            remote.remove(self.ids[s].as_str());
            let status = site.status(now).expect("status");
            assert_eq!(
                status.linked_sites,
                remote.len(),
                "{}: status says {} linked sites, links and incoming say {}",
                SITES[s],
                status.linked_sites,
                remote.len()
            );
            for l in links.iter().filter(|l| l.state().is_connected()) {
                if let Some(to) = self.site_of_id(&l.remote_site_id) {
                    outgoing.insert((s, to, l.name.clone()));
                }
            }
        }
        if ticked {
            assert_eq!(
                outgoing, incoming,
                "right after a tick, connected outgoing links (from, to, link) and live incoming links differ"
            );
        }
    }
}

impl Default for Model {
    fn default() -> Self {
        Model::new()
    }
}

/// One execution of the `ops` target.
pub fn run(script: &Script) -> Model {
    let mut model = Model::new();
    for op in &script.ops {
        model.step(op);
    }
    model
}
