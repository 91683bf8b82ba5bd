//! The site's own record: identity, endpoints, CA, server certificate and
//! the certificates it no longer accepts.

use std::fmt;

use time::{Duration, OffsetDateTime};

use crate::token::Endpoint;

/// Whether a site accepts links (interior) or only makes them (edge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SiteMode {
    /// Accepts links, issues tokens, has a CA.
    Interior,
    /// Only links to interior sites; has no CA and issues no tokens.
    Edge,
}

impl fmt::Display for SiteMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SiteMode::Interior => "interior",
            SiteMode::Edge => "edge",
        })
    }
}

impl std::str::FromStr for SiteMode {
    type Err = String;
    fn from_str(s: &str) -> Result<SiteMode, String> {
        match s {
            "interior" => Ok(SiteMode::Interior),
            "edge" => Ok(SiteMode::Edge),
            other => Err(format!(
                "unknown site mode {other:?}: expected interior or edge"
            )),
        }
    }
}

/// A certificate and its private key as stored (PEM).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StoredCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PKCS#8 PEM.
    pub key_pem: String,
}

impl fmt::Debug for StoredCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredCert")
            .field("cert_pem", &format_args!("<{} bytes>", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// A certificate this site no longer accepts, although its CA still
/// signs it: made by [`crate::site::Site::revoke_peer`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RevokedCert {
    /// Serial number, uppercase hex.
    pub serial: String,
    /// The certificate's common name (the peer's site id, or a cert
    /// token's name).
    pub common_name: String,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// What a site keeps about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SiteRecord {
    /// The site id (a UUID): the `generated-by` of its tokens and the
    /// common name of the certificates other sites issue to it.
    pub id: String,
    /// The site name.
    pub name: String,
    /// The namespace (what `status` names).
    pub namespace: String,
    /// Interior or edge.
    pub mode: SiteMode,
    /// The version this site reports to others.
    pub version: String,
    /// The hosts the server certificate is for (IP addresses and names).
    pub hosts: Vec<String>,
    /// Where other sites redeem claims.
    pub claims: Endpoint,
    /// Where interior sites link to this site.
    pub inter_router: Endpoint,
    /// Where edge sites link to this site.
    pub edge: Endpoint,
    /// Validity of the certificates this site issues, in seconds.
    pub cert_validity_secs: i64,
    /// The site CA (none on an edge site).
    #[serde(default)]
    pub ca: Option<StoredCert>,
    /// The server certificate for the endpoints, issued by the CA.
    #[serde(default)]
    pub server: Option<StoredCert>,
    /// Starts at 1; +1 on every revoke-access.
    pub ca_generation: u32,
    /// Certificates of the current CA that no longer authenticate.
    #[serde(default)]
    pub revoked: Vec<RevokedCert>,
    /// When the site was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When access was last revoked.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub revoked_at: Option<OffsetDateTime>,
}

impl SiteRecord {
    /// The validity of certificates this site issues.
    pub fn cert_validity(&self) -> Duration {
        Duration::seconds(self.cert_validity_secs)
    }
}
