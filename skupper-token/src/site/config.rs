//! Making a site and opening one: its configuration, its identity, its
//! first CA and server certificate.

use time::{Duration, OffsetDateTime};

use super::{
    validate_name, CreateSiteError, LoadError, Site, DEFAULT_CLAIMS_PORT, DEFAULT_EDGE_PORT,
    DEFAULT_INTER_ROUTER_PORT,
};
use crate::pki::{CaIssuer, CertifiedKey, PkiError, DEFAULT_VALIDITY};
use crate::random::{self, Random};
use crate::records::{SiteMode, SiteRecord, StoredCert};
use crate::store::{typed, Cas, Key, Record, Store, StoreError};
use crate::token::Endpoint;
use crate::version::VERSION;

/// Why [`Site::open`] could not open a site.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The store holds no site.
    #[error("no site has been created here yet: create one first")]
    NotInitialized,
    /// The store failed, or the site record cannot be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How to make a new site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteConfig {
    /// The site name.
    pub name: String,
    /// The namespace; defaults to the name.
    pub namespace: String,
    /// Interior (default) or edge.
    pub mode: SiteMode,
    /// The version to report; defaults to [`VERSION`].
    pub version: String,
    /// Hosts other sites reach this site at; the first one is advertised in
    /// tokens, all go into the server certificate. Default `127.0.0.1`.
    pub hosts: Vec<String>,
    /// Claims port (default 8081).
    pub claims_port: u16,
    /// Inter-router port (default 55671).
    pub inter_router_port: u16,
    /// Edge port (default 45671).
    pub edge_port: u16,
    /// Validity of the site CA and of every certificate it issues (default
    /// 5 years, as in Skupper).
    pub validity: Duration,
}

impl SiteConfig {
    /// Defaults for a site called `name`.
    pub fn new(name: impl Into<String>) -> SiteConfig {
        let name = name.into();
        SiteConfig {
            namespace: name.clone(),
            name,
            mode: SiteMode::Interior,
            version: VERSION.to_owned(),
            hosts: vec!["127.0.0.1".to_owned()],
            claims_port: DEFAULT_CLAIMS_PORT,
            inter_router_port: DEFAULT_INTER_ROUTER_PORT,
            edge_port: DEFAULT_EDGE_PORT,
            validity: DEFAULT_VALIDITY,
        }
    }

    /// Sets the namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: SiteMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the hosts (the first is advertised).
    pub fn hosts<I: IntoIterator<Item = S>, S: Into<String>>(mut self, hosts: I) -> Self {
        self.hosts = hosts.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the claims, inter-router and edge ports.
    pub fn ports(mut self, claims: u16, inter_router: u16, edge: u16) -> Self {
        self.claims_port = claims;
        self.inter_router_port = inter_router;
        self.edge_port = edge;
        self
    }

    /// Sets the reported version.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }
}

impl StoredCert {
    pub(super) fn from_certified(c: &CertifiedKey) -> StoredCert {
        StoredCert {
            cert_pem: c.cert_pem.clone(),
            key_pem: c.key.to_pem(),
        }
    }

    /// Parses the certificate and key.
    pub fn certified_key(&self) -> Result<CertifiedKey, PkiError> {
        CertifiedKey::from_pem(&self.cert_pem, &self.key_pem)
    }
}

impl<S: Store> Site<S> {
    /// Creates a new site in `store`: a random id, and for an interior site
    /// a new CA and a server certificate for its hosts.
    pub fn create(
        store: S,
        config: &SiteConfig,
        now: OffsetDateTime,
        rng: &mut dyn Random,
    ) -> Result<Site<S>, CreateSiteError> {
        validate_name("site name", &config.name)?;
        validate_name("namespace", &config.namespace)?;
        if config.validity <= Duration::ZERO {
            return Err(CreateSiteError::Invalid {
                what: "certificate validity",
                value: config.validity.to_string(),
                reason: "must be positive".into(),
            });
        }
        let host = config
            .hosts
            .iter()
            .map(|h| h.trim())
            .find(|h| !h.is_empty())
            .ok_or_else(|| CreateSiteError::Invalid {
                what: "hosts",
                value: String::new(),
                reason: "give at least one host name or IP address other sites can reach".into(),
            })?
            .to_owned();
        if let Some(existing) = typed::load(&store, &Key::site(), typed::site)? {
            return Err(CreateSiteError::AlreadyExists {
                namespace: existing.record.namespace,
                id: existing.record.id,
            });
        }
        let id = random::uuid_v4(rng).to_string();
        let (ca, server) = match config.mode {
            SiteMode::Edge => (None, None),
            SiteMode::Interior => {
                let ca = CaIssuer::new_site_ca(rng, now, config.validity)?;
                let server = ca.issue_server(&config.hosts, rng, now, config.validity)?;
                (
                    Some(StoredCert::from_certified(ca.certified_key())),
                    Some(StoredCert::from_certified(&server)),
                )
            }
        };
        let endpoint = |port| Endpoint {
            host: host.clone(),
            port,
        };
        let record = SiteRecord {
            id: id.clone(),
            name: config.name.clone(),
            namespace: config.namespace.clone(),
            mode: config.mode,
            version: config.version.clone(),
            hosts: config.hosts.clone(),
            claims: endpoint(config.claims_port),
            inter_router: endpoint(config.inter_router_port),
            edge: endpoint(config.edge_port),
            cert_validity_secs: config.validity.whole_seconds(),
            ca,
            server,
            ca_generation: 1,
            revoked: Vec::new(),
            created_at: now,
            revoked_at: None,
        };
        match store.compare_and_swap(&Key::site(), None, Some(Record::Site(Box::new(record))))? {
            Cas::Done(_) => {}
            Cas::Conflict(_) => {
                let existing = typed::load(&store, &Key::site(), typed::site)?
                    .ok_or(CreateSiteError::Conflict)?;
                return Err(CreateSiteError::AlreadyExists {
                    namespace: existing.record.namespace,
                    id: existing.record.id,
                });
            }
        }
        Ok(Site::with_id(store, id))
    }

    /// Opens the site kept in `store`.
    pub fn open(store: S) -> Result<Site<S>, OpenError> {
        let record =
            typed::load(&store, &Key::site(), typed::site)?.ok_or(OpenError::NotInitialized)?;
        Ok(Site::with_id(store, record.record.id))
    }

    /// The site CA and the server certificate for the endpoints, or `None`
    /// on an edge site.
    pub fn server_credentials(&self) -> Result<Option<(String, CertifiedKey)>, LoadError> {
        let loaded = self.loaded()?;
        match (&loaded.issuer, &loaded.record.server) {
            (Some(ca), Some(server)) => {
                let parsed = loaded.server.get_or_init(|| server.certified_key());
                Ok(Some((ca.ca_pem().to_owned(), parsed.clone()?)))
            }
            _ => Ok(None),
        }
    }
}
