//! Why a site operation failed: one error per family of operations
//! (reading the site, making it, issuing tokens, incoming links,
//! revocation, outgoing links), and [`SiteError`], the sum a caller that
//! does all of them carries. Opening a site ([`OpenError`](super::OpenError)), redeeming a
//! claim ([`RedeemError`](crate::claim::RedeemError)) and authenticating a
//! peer ([`AuthError`](crate::pki::AuthError)) have their own.

use crate::link::TransitionError;
use crate::pki::PkiError;
use crate::store::StoreError;
use crate::token::DecodeError;

use super::OpenError;

/// Why the site record could not be read ([`Site::record`](super::Site::record),
/// [`Site::status`](super::Site::status), ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The site's CA or server certificate cannot be read.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The store holds no site.
    #[error("no site has been created here yet: create one first")]
    NotInitialized,
}

/// Why [`Site::create`](super::Site::create) made no site.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CreateSiteError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The CA or the server certificate could not be made.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The store already holds a site.
    #[error("a site already exists here: namespace {namespace:?}, id {id}; open it instead of creating it")]
    AlreadyExists {
        /// Its namespace.
        namespace: String,
        /// Its id.
        id: String,
    },
    /// A name or setting of the configuration is not acceptable.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// What it is (`site name`, `namespace`, `hosts`, ...).
        what: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// Another handle made a site in the store and removed it again while
    /// this one was being made.
    #[error("the site record was changed concurrently while the site was being made; try again")]
    Conflict,
}

/// Why no token was issued ([`Site::create_token`](super::Site::create_token),
/// [`Site::create_claim_token`](super::Site::create_claim_token),
/// [`Site::create_cert_token`](super::Site::create_cert_token)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The certificate could not be made, or the site's CA cannot be read.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The store holds no site.
    #[error("no site has been created here yet: create one first")]
    NotInitialized,
    /// An edge site has no CA: it cannot issue tokens.
    #[error("Edge configuration cannot accept connections")]
    EdgeCannotAcceptConnections,
    /// An option is not acceptable.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// What it is (`token name`, `claim expiry`, ...).
        what: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A token of that name already has an outstanding claim.
    #[error("a claim named {name:?} already exists on this site: choose another token name")]
    ClaimExists {
        /// The claim name.
        name: String,
    },
    /// Other handles kept changing the record.
    #[error("{what} was changed concurrently {attempts} times in a row; try again")]
    Conflict {
        /// Which record.
        what: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// An outstanding grant already has that name.
    #[error("a grant named {name:?} already exists on this site: choose another name, or delete that grant")]
    GrantExists {
        /// The grant's name.
        name: String,
    },
    /// A grant cannot be made with these options.
    #[error(transparent)]
    GrantOptions(#[from] crate::v2::grant::GrantOptionsError),
}

/// Why the records of incoming links could not be changed
/// ([`Site::drop_incoming`](super::Site::drop_incoming),
/// [`Site::expire_incoming`](super::Site::expire_incoming),
/// [`Site::renew_incoming`](super::Site::renew_incoming),
/// [`Site::reconcile_incoming`](super::Site::reconcile_incoming)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IncomingError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The site's CA cannot be read.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The store holds no site.
    #[error("no site has been created here yet: create one first")]
    NotInitialized,
    /// Other handles kept changing the record.
    #[error("{what} was changed concurrently {attempts} times in a row; try again")]
    Conflict {
        /// Which record.
        what: String,
        /// How many attempts were made.
        attempts: u32,
    },
}

/// Why nothing was revoked ([`Site::revoke_access`](super::Site::revoke_access),
/// [`Site::revoke_peer`](super::Site::revoke_peer)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevokeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The new CA could not be made, or the current one cannot be read.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The store holds no site.
    #[error("no site has been created here yet: create one first")]
    NotInitialized,
    /// An edge site has no CA: there is no access to revoke.
    #[error("Edge configuration cannot accept connections")]
    EdgeCannotAcceptConnections,
    /// No certificate this site issued names the peer, and no live incoming
    /// link comes from it.
    #[error("no certificate issued by this site's current CA names {peer:?}, and no live incoming link comes from a site with that id or name")]
    UnknownPeer {
        /// What was asked for.
        peer: String,
    },
    /// Other handles kept changing the record.
    #[error("{what} was changed concurrently {attempts} times in a row; try again")]
    Conflict {
        /// Which record.
        what: String,
        /// How many attempts were made.
        attempts: u32,
    },
}

/// Why an outgoing link could not be made, redeemed, dialed or changed
/// (the link methods of [`Site`](super::Site): [`Site::create_link`](super::Site::create_link),
/// [`Site::redeem_link`](super::Site::redeem_link), [`Site::dial_link`](super::Site::dial_link), ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key or certificate could not be made or read.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The store holds no site.
    #[error("no site has been created here yet: create one first")]
    NotInitialized,
    /// A name is not acceptable.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// What it is (`link name`).
        what: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// The token file is not a usable Skupper token.
    #[error(transparent)]
    Token(#[from] DecodeError),
    /// The token was issued by this same site.
    #[error("Can't create connection to self with token")]
    LinkToSelf,
    /// A link to the token's issuing site already exists (and its claim
    /// was not refused: a refused link does not count).
    #[error("Already connected to \"{site}\". The existing link {link:?} goes to that site.")]
    AlreadyConnected {
        /// The issuing site's id, as the existing link knows it (the id a
        /// link to it learned from the site's hello, else what its token
        /// gave: a 2.x file's `ca-sha256:` id).
        site: String,
        /// The existing link's name.
        link: String,
    },
    /// A link of that name exists.
    #[error("The connector secret \"{name}\" already exists, please choose a different name")]
    LinkNameTaken {
        /// The name.
        name: String,
    },
    /// No link of that name.
    #[error("No such link \"{name}\"")]
    NoSuchLink {
        /// The name asked for.
        name: String,
    },
    /// The link of that name was replaced (deleted and made again, with
    /// the same token or another, or given new credentials) since it was
    /// read, so a change meant for the old link was not made.
    #[error(
        "link \"{name}\" was replaced: it is no longer the link this change was for (it was made again or has new credentials)"
    )]
    LinkReplaced {
        /// The link name.
        name: String,
    },
    /// The link's claim could not be redeemed; the link is now failed.
    #[error("Failed to redeem claim: {reason}")]
    ClaimRedemption {
        /// The link.
        link: String,
        /// The claims server's (or the network's) reason.
        reason: String,
        /// Whether trying again may help.
        retryable: bool,
    },
    /// An AccessToken this site cannot redeem (its URL, its name, or this
    /// site's id as the certificate's name); nothing was stored or sent.
    #[error(transparent)]
    GrantRequest(#[from] crate::v2::redeem::GrantRequestError),
    /// An AccessToken was not redeemed: the grant server refused it
    /// (`Controller got failed response: <status> (<text>) <body>`, as a
    /// Skupper site records it) or could not be reached.
    #[error("the AccessToken of link {link:?} was not redeemed: {reason}")]
    GrantRedemption {
        /// The link.
        link: String,
        /// Why.
        reason: String,
        /// Whether trying again may succeed.
        retryable: bool,
    },
    /// The link has nothing to redeem (it already has credentials).
    #[error("link {link:?} has no claim to redeem: it is {state}")]
    NothingToRedeem {
        /// The link.
        link: String,
        /// Its state.
        state: &'static str,
    },
    /// A link state change was refused.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// Other handles kept changing the record.
    #[error("{what} was changed concurrently {attempts} times in a row; try again")]
    Conflict {
        /// Which record.
        what: String,
        /// How many attempts were made.
        attempts: u32,
    },
}

/// The error of any site operation, for a caller that does operations of
/// several families and reports them alike (the harness carries it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SiteError {
    /// The store failed while listing or deleting records.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The site record could not be read.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A site could not be made.
    #[error(transparent)]
    Create(#[from] CreateSiteError),
    /// A site could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A token could not be issued.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The records of incoming links could not be changed.
    #[error(transparent)]
    Incoming(#[from] IncomingError),
    /// Nothing was revoked.
    #[error(transparent)]
    Revoke(#[from] RevokeError),
    /// An outgoing link could not be made, redeemed, dialed or changed.
    #[error(transparent)]
    Link(#[from] LinkError),
}

// ---------------------------------------------------------------------------
// What the families share
// ---------------------------------------------------------------------------

/// A name or setting refused by a check several families make.
#[derive(Debug)]
pub(crate) struct Invalid {
    pub(crate) what: &'static str,
    pub(crate) value: String,
    pub(crate) reason: String,
}

/// The site is an edge site: it has no CA.
#[derive(Debug)]
pub(crate) struct EdgeSite;

macro_rules! from_load {
    ($($family:ident),*) => {$(
        impl From<LoadError> for $family {
            fn from(e: LoadError) -> $family {
                match e {
                    LoadError::Store(e) => $family::Store(e),
                    LoadError::Pki(e) => $family::Pki(e),
                    LoadError::NotInitialized => $family::NotInitialized,
                }
            }
        }
    )*};
}
from_load!(TokenError, IncomingError, RevokeError, LinkError);

macro_rules! from_invalid {
    ($($family:ident),*) => {$(
        impl From<Invalid> for $family {
            fn from(Invalid { what, value, reason }: Invalid) -> $family {
                $family::Invalid { what, value, reason }
            }
        }
    )*};
}
from_invalid!(CreateSiteError, TokenError, LinkError);

macro_rules! from_edge {
    ($($family:ident),*) => {$(
        impl From<EdgeSite> for $family {
            fn from(EdgeSite: EdgeSite) -> $family {
                $family::EdgeCannotAcceptConnections
            }
        }
    )*};
}
from_edge!(TokenError, RevokeError);

impl From<IncomingError> for RevokeError {
    /// Dropping the incoming links a revocation cuts off.
    fn from(e: IncomingError) -> RevokeError {
        match e {
            IncomingError::Store(e) => RevokeError::Store(e),
            IncomingError::Pki(e) => RevokeError::Pki(e),
            IncomingError::NotInitialized => RevokeError::NotInitialized,
            IncomingError::Conflict { what, attempts } => RevokeError::Conflict { what, attempts },
        }
    }
}
