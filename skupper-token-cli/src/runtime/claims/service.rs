//! What the claims endpoint needs from a site: its certificate and the
//! redemption rules ([`ClaimService`]), and the implementation over a real
//! [`Site`] ([`SiteClaims`]) that retries conflicts with other processes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use skupper_token::claim::{RedeemError, RedeemRequest};
use skupper_token::pki::CertifiedKey;
use skupper_token::site::Site;
use skupper_token::store::Store;
use skupper_token::token::CertToken;
use skupper_token::v2::{GrantError, GrantRedemption, LinkFile};
use time::OffsetDateTime;

use crate::os_random::OsRandom;

/// What the claims endpoint needs from a site: its certificate and the
/// redemption rules. [`SiteClaims`] is the implementation over a
/// [`skupper_token::site::Site`]; tests can supply their own.
///
/// [`ClaimService::redeem`] may block (a file store writes durably): the
/// endpoint calls it on tokio's blocking pool.
pub trait ClaimService: Send + Sync + 'static {
    /// The server certificate (leaf first) and key to present now. Called
    /// at every TLS handshake, so a new certificate is served as soon as
    /// the site has one.
    fn server_certificate(&self) -> Result<CertifiedKey, String>;

    /// Redeems a claim; the error decides the HTTP status and body.
    fn redeem(&self, request: &RedeemRequest) -> Result<CertToken, RedeemError>;

    /// Whether the site has a Skupper 2.x grant of id `grant` (for a
    /// request that does not say whether it is for a claim or a grant:
    /// [`super::grant_answer::route`]). May block, like
    /// [`ClaimService::redeem`]. A service without grants has none.
    fn has_grant(&self, grant: &str) -> bool {
        let _ = grant;
        false
    }

    /// Redeems a Skupper 2.x grant; the error decides the HTTP status and
    /// body. May block, like [`ClaimService::redeem`]. A service without
    /// grants knows none ([`GrantError::NoSuchGrant`]: 404 `No such
    /// claim`).
    fn redeem_grant(&self, request: &GrantRedemption) -> Result<LinkFile, GrantError> {
        Err(GrantError::NoSuchGrant {
            grant: request.grant.clone(),
        })
    }
}

/// A clock: the time now.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// [`ClaimService`] over a site: its server certificate and
/// [`Site::redeem_claim`] with the OS random source and a clock.
///
/// Redemptions of one claim through this site handle take turns in the
/// core. Another process on the same site directory (a second `serve`, or
/// a command redeeming through the library) can still win the claim
/// record's compare-and-swap over and over, and then the core gives up
/// with [`RedeemError::Conflict`]; that is retried here after a short,
/// growing, randomized pause ([`SiteClaims::CONFLICT_PAUSES`]), so a client
/// gets 503 only if the record stays contended for all of them.
pub struct SiteClaims<S> {
    site: Arc<Site<S>>,
    clock: Clock,
}

impl<S> fmt::Debug for SiteClaims<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SiteClaims")
            .field("site", &self.site)
            .finish_non_exhaustive()
    }
}

impl<S: Store + 'static> SiteClaims<S> {
    /// Serves `site`'s claims with the system clock.
    pub fn new(site: Arc<Site<S>>) -> SiteClaims<S> {
        SiteClaims::with_clock(site, Arc::new(OffsetDateTime::now_utc))
    }

    /// Serves `site`'s claims with `clock` (for tests that move time).
    pub fn with_clock(site: Arc<Site<S>>, clock: Clock) -> SiteClaims<S> {
        SiteClaims { site, clock }
    }

    /// The pauses before each new attempt after [`RedeemError::Conflict`]
    /// (each drawn between half and all of the value), about half a second
    /// in all at most.
    pub const CONFLICT_PAUSES: [Duration; 7] = [
        Duration::from_millis(2),
        Duration::from_millis(5),
        Duration::from_millis(10),
        Duration::from_millis(20),
        Duration::from_millis(40),
        Duration::from_millis(80),
        Duration::from_millis(160),
    ];
}

/// `pause` scaled by a random factor from 1/2 to 1, so processes that
/// collided do not collide again in step.
fn jittered(pause: Duration, rng: &mut OsRandom) -> Duration {
    let mut byte = [0u8; 1];
    skupper_token::random::Random::fill(rng, &mut byte);
    pause / 2 + pause * u32::from(byte[0]) / 510
}

impl<S: Store + 'static> ClaimService for SiteClaims<S> {
    fn server_certificate(&self) -> Result<CertifiedKey, String> {
        match self.site.server_credentials() {
            Ok(Some((_ca, server))) => Ok(server),
            Ok(None) => Err(
                "this is an edge site: it has no CA and no server certificate, so it serves no claims"
                    .into(),
            ),
            Err(e) => Err(format!("cannot read the site's server certificate: {e}")),
        }
    }

    /// Blocks: store writes, and the pauses between conflicting attempts
    /// (it runs on a blocking thread, never on a tokio worker).
    fn redeem(&self, request: &RedeemRequest) -> Result<CertToken, RedeemError> {
        let mut rng = OsRandom::new();
        for pause in Self::CONFLICT_PAUSES {
            match self.site.redeem_claim(request, (self.clock)(), &mut rng) {
                Err(RedeemError::Conflict { .. }) => std::thread::sleep(jittered(pause, &mut rng)),
                other => return other,
            }
        }
        self.site.redeem_claim(request, (self.clock)(), &mut rng)
    }

    /// A store that cannot be listed has no grant the request could be
    /// for: the request is then answered as a claim's.
    fn has_grant(&self, grant: &str) -> bool {
        self.site.has_grant(grant).unwrap_or(false)
    }

    /// Blocks, as [`ClaimService::redeem`] does, and retries
    /// [`GrantError::Conflict`] after the same pauses.
    fn redeem_grant(&self, request: &GrantRedemption) -> Result<LinkFile, GrantError> {
        let mut rng = OsRandom::new();
        for pause in Self::CONFLICT_PAUSES {
            match self.site.redeem_grant(request, (self.clock)(), &mut rng) {
                Err(GrantError::Conflict { .. }) => std::thread::sleep(jittered(pause, &mut rng)),
                other => return other,
            }
        }
        self.site.redeem_grant(request, (self.clock)(), &mut rng)
    }
}
