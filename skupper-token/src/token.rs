//! Skupper 1.x token files: claim tokens and cert tokens.
//!
//! A token file is a Kubernetes `Secret` written as YAML, exactly as Skupper
//! 1.x writes it, so that tokens made here work with a real Skupper site and
//! the other way round:
//!
//! - a **claim token** (`skupper.io/type: token-claim`) holds the issuing
//!   site's CA, a password and the URL where the linking site exchanges it
//!   for a certificate, possibly with an expiry time;
//! - a **cert token** (`skupper.io/type: connection-token`) holds the CA, a
//!   client certificate and its private key, and the hosts and ports to
//!   connect to. It is also what the claims endpoint answers.
//!
//! [`Token::decode`] reads either kind from untrusted bytes: it never
//! panics, refuses input over [`MAX_TOKEN_BYTES`], and checks that the
//! certificates are X.509 and the key is a PEM private key.
//! [`Token::encode`] writes the exact Skupper layout (keys in alphabetical
//! order, `creationTimestamp: null`, ports as quoted strings), and
//! `decode(encode(t)) == t`.
//!
//! [`TokenFile::decode`] reads a token file of either Skupper generation:
//! a 1.x token as [`Token::decode`] does, a Skupper 2.x AccessToken or Link
//! file as [`crate::v2`] does. [`Token::decode`] reads only 1.x tokens and
//! refuses 2.x files with [`DecodeError::SkupperV2`].
//!
//! ```
//! use skupper_token::token::Token;
//!
//! let file = include_bytes!("../tests/data/skupper-1.5.2-claim-token.yaml");
//! let Token::Claim(claim) = Token::decode(file).unwrap() else { panic!("not a claim") };
//! assert_eq!(claim.issuer_version, "1.5.2");
//! assert_eq!(claim.expires_at, None); // files before Skupper 1.8 have no expiry
//! assert_eq!(Token::Claim(claim).encode().as_bytes(), &file[..]);
//! ```

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use time::{OffsetDateTime, UtcOffset};

use crate::yaml;

/// The largest token file [`Token::decode`] reads (1 MiB). Real tokens are
/// about 2 to 6 KiB.
pub const MAX_TOKEN_BYTES: usize = 1024 * 1024;

/// The label that says which kind of token a Secret is.
pub const TYPE_LABEL: &str = "skupper.io/type";
/// [`TYPE_LABEL`] value of a claim token.
pub const CLAIM_TYPE: &str = "token-claim";
/// [`TYPE_LABEL`] value of a cert token.
pub const CERT_TYPE: &str = "connection-token";

/// Annotation: the claims URL, `https://<host>:<port>/<claim name>`.
pub const URL_ANNOTATION: &str = "skupper.io/url";
/// Annotation: the issuing site's id.
pub const GENERATED_BY_ANNOTATION: &str = "skupper.io/generated-by";
/// Annotation: the issuing site's Skupper version.
pub const SITE_VERSION_ANNOTATION: &str = "skupper.io/site-version";
/// Annotation: when a claim token expires (RFC 3339), since Skupper 1.8.
pub const CLAIM_EXPIRATION_ANNOTATION: &str = "skupper.io/claim-expiration";
/// Annotation: host for interior sites to connect to.
pub const INTER_ROUTER_HOST_ANNOTATION: &str = "inter-router-host";
/// Annotation: port for interior sites to connect to.
pub const INTER_ROUTER_PORT_ANNOTATION: &str = "inter-router-port";
/// Annotation: host for edge sites to connect to.
pub const EDGE_HOST_ANNOTATION: &str = "edge-host";
/// Annotation: port for edge sites to connect to.
pub const EDGE_PORT_ANNOTATION: &str = "edge-port";

/// Data field: the issuing site's CA certificate (PEM).
pub const CA_CERT_FIELD: &str = "ca.crt";
/// Data field: the claim password.
pub const PASSWORD_FIELD: &str = "password";
/// Data field: the client certificate (PEM).
pub const TLS_CERT_FIELD: &str = "tls.crt";
/// Data field: the client certificate's private key (PEM).
pub const TLS_KEY_FIELD: &str = "tls.key";

/// A claim password. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Password {
        Password(password.into())
    }

    /// The password itself. Handle with care: never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Password {
    fn from(password: String) -> Password {
        Password(password)
    }
}

impl From<&str> for Password {
    fn from(password: &str) -> Password {
        Password(password.to_owned())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// PEM text of a private key. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct SecretPem(String);

impl SecretPem {
    /// Wraps the PEM text of a private key.
    pub fn new(pem: impl Into<String>) -> SecretPem {
        SecretPem(pem.into())
    }

    /// The PEM text. Handle with care: never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretPem {
    fn from(pem: String) -> SecretPem {
        SecretPem(pem)
    }
}

impl fmt::Debug for SecretPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretPem(<redacted>)")
    }
}

impl fmt::Display for SecretPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretPem(<redacted>)")
    }
}

/// A host and port to connect to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    /// Host name or IP address (an IPv6 address without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl fmt::Display for Endpoint {
    /// `host:port`, or `[v6addr]:port` when the host contains a colon.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A claim token: exchanged once (or a few times) for a certificate at the
/// issuing site's claims URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToken {
    /// The claim name (`metadata.name`); also the last part of [`Self::url`].
    pub name: String,
    /// The issuing site's CA certificate, PEM text (`data.ca.crt`).
    pub ca_pem: String,
    /// The claim password (`data.password`).
    pub password: Password,
    /// Where to redeem the claim (`skupper.io/url`):
    /// `https://<host>:<port>/<claim name>`.
    pub url: String,
    /// The issuing site's id (`skupper.io/generated-by`).
    pub issuer_site_id: String,
    /// The issuing site's Skupper version (`skupper.io/site-version`); empty
    /// when the file has none (then it is not written either).
    pub issuer_version: String,
    /// When the claim expires (`skupper.io/claim-expiration`); `None` for
    /// claims that never expire and for files from before Skupper 1.8.
    /// Decoding gives UTC with whole seconds; encoding writes whole seconds.
    pub expires_at: Option<OffsetDateTime>,
}

/// A cert token: a client certificate issued by the site's CA, reusable
/// until the site revokes access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertToken {
    /// The token name (`metadata.name`; Skupper's default is `skupper`).
    pub name: String,
    /// The issuing site's CA certificate, PEM text (`data.ca.crt`).
    pub ca_pem: String,
    /// The client certificate (and any chain), PEM text (`data.tls.crt`).
    pub cert_pem: String,
    /// The client certificate's private key, PEM text (`data.tls.key`).
    pub key_pem: SecretPem,
    /// The issuing site's id (`skupper.io/generated-by`).
    pub issuer_site_id: String,
    /// The issuing site's Skupper version (`skupper.io/site-version`); empty
    /// when the file has none (then it is not written either).
    pub issuer_version: String,
    /// Where interior sites connect (`inter-router-host`/`inter-router-port`).
    pub inter_router: Endpoint,
    /// Where edge sites connect (`edge-host`/`edge-port`).
    pub edge: Endpoint,
}

/// A Skupper token file of either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A claim token (`skupper.io/type: token-claim`).
    Claim(ClaimToken),
    /// A cert token (`skupper.io/type: connection-token`).
    Cert(CertToken),
}

/// Why a token file was refused.
///
/// The first words of several messages are Skupper's own
/// (`Secret is not a valid skupper token`, `Expected ca.crt field in secret
/// data`, `Expected skupper.io/url annotation`). No message contains a
/// password or a private key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is larger than [`MAX_TOKEN_BYTES`].
    #[error("token is too large: {len} bytes, the limit is {max} bytes (a Skupper token is a few KiB: is this the right file?)")]
    TooLarge {
        /// Size of the input.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input is not a YAML mapping of the Secret's shape.
    #[error(
        "token is not YAML: {reason} (expected a Skupper token file, a Kubernetes Secret in YAML)"
    )]
    NotYaml {
        /// What the YAML reader reported (never a copy of the input).
        reason: String,
    },
    /// A Skupper 2.x file (an AccessToken, an AccessGrant, a Link file):
    /// this version reads Skupper 1.x tokens only.
    #[error("this is {what}, not a Skupper 1.x token: this version reads only Skupper 1.x claim and cert tokens (Secrets labelled skupper.io/type: {CLAIM_TYPE} or {CERT_TYPE})")]
    SkupperV2 {
        /// What the file is, in words: `a Skupper 2.x AccessToken (...)`.
        what: String,
    },
    /// Several YAML documents that are not a Skupper 2.x Link file.
    #[error("the file holds {count} YAML documents; a Skupper token file is one Secret")]
    MultipleDocuments {
        /// How many documents (at least 2).
        count: usize,
    },
    /// Not a Secret, or the `skupper.io/type` label is missing or unknown.
    #[error("Secret is not a valid skupper token ({})", describe_not_token(.kind, .type_label))]
    NotASkupperToken {
        /// The `kind` seen, if any.
        kind: Option<String>,
        /// The `skupper.io/type` label seen, if any.
        type_label: Option<String>,
    },
    /// The token is valid but of the other kind than the caller asked for.
    #[error("expected a {expected} token (skupper.io/type: {}) but this is a {found} token (skupper.io/type: {})", type_label_of(.expected), type_label_of(.found))]
    WrongType {
        /// The kind asked for: `claim` or `cert`.
        expected: &'static str,
        /// The kind found: `claim` or `cert`.
        found: &'static str,
    },
    /// The Secret has no `metadata.name` (or an empty one).
    #[error("token has no name (metadata.name): the file is incomplete; create the token again")]
    MissingName,
    /// A required `data` field is missing.
    #[error("Expected {field} field in secret data")]
    MissingField {
        /// The field name, such as `ca.crt`.
        field: String,
    },
    /// A required annotation is missing (or empty).
    #[error("Expected {name} annotation")]
    MissingAnnotation {
        /// The annotation name, such as `skupper.io/url`.
        name: String,
    },
    /// A `data` field is not standard base64.
    #[error("data field {field} is not valid base64: {reason}")]
    BadBase64 {
        /// The field name.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `data` field that should be text is not UTF-8.
    #[error("data field {field} is not UTF-8 text")]
    NotUtf8 {
        /// The field name.
        field: String,
    },
    /// A `data` field is not the PEM it should be.
    #[error("data field {field} is not valid PEM: {reason}")]
    BadPem {
        /// The field name.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A PEM `CERTIFICATE` block is not an X.509 certificate.
    #[error("data field {field} holds a CERTIFICATE block that is not a valid X.509 certificate: {reason}")]
    NotACertificate {
        /// The field name.
        field: String,
        /// What the X.509 parser reported.
        reason: String,
    },
    /// A timestamp annotation is not RFC 3339.
    #[error("annotation {annotation} is not an RFC 3339 time: {value:?} (expected e.g. 2026-11-28T10:15:00Z)")]
    BadTimestamp {
        /// The annotation name.
        annotation: String,
        /// Its value.
        value: String,
    },
    /// A port annotation is not a number from 1 to 65535.
    #[error("annotation {annotation} is not a port number (1-65535): {value:?}")]
    BadPort {
        /// The annotation name.
        annotation: String,
        /// Its value.
        value: String,
    },
    /// The claims URL is not `https://<host>[:<port>]/<claim name>`.
    #[error("claim URL {url:?} is not valid: expected https://<host>:<port>/<claim name>")]
    BadUrl {
        /// The URL seen.
        url: String,
    },
    /// A Skupper 1.x token where a Skupper 2.x file was asked for
    /// ([`crate::v2::AccessToken::decode`], [`crate::v2::LinkFile::decode`];
    /// [`TokenFile::decode`] reads either generation).
    #[error("this is a Skupper 1.x {kind} token (skupper.io/type: {}), not {expected}", type_label_of(.kind))]
    SkupperV1 {
        /// The kind found: `claim` or `cert`.
        kind: &'static str,
        /// What was asked for, in words: `a Skupper 2.x AccessToken`.
        expected: &'static str,
    },
    /// A Skupper 2.x AccessGrant: the issuing site's record of the access it
    /// grants, not a token another site can use.
    #[error("this is a Skupper 2.x AccessGrant{}, the issuing site's record of the access it grants, not a token: another site links with the AccessToken issued from it", name_suffix(.name))]
    AccessGrant {
        /// The grant's `metadata.name`, if any.
        name: Option<String>,
    },
    /// A YAML document of another kind than the file should hold.
    #[error("YAML document {document} is {}, expected {expected}", describe_kind(.api_version, .kind))]
    V2UnexpectedKind {
        /// Which document (1 for the first).
        document: usize,
        /// Its `apiVersion`, if any.
        api_version: Option<String>,
        /// Its `kind`, if any.
        kind: Option<String>,
        /// What the document should be, in words.
        expected: &'static str,
    },
    /// A required field of a Skupper 2.x resource is missing or empty.
    #[error("{resource} has no {field}")]
    V2MissingField {
        /// The resource, in words: `AccessToken "grant1"`, `Link "l1"
        /// (YAML document 2)`.
        resource: String,
        /// The field's path: `spec.code`, `spec.endpoints[1].host`.
        field: String,
    },
    /// A field of a Skupper 2.x resource holds a value it cannot have.
    #[error("{resource}: {field} {problem}")]
    V2BadField {
        /// The resource, in words (as in [`DecodeError::V2MissingField`]).
        resource: String,
        /// The field's path: `spec.url`, `data.tls.key`.
        field: String,
        /// What is wrong with it (never the value of a code or a key).
        problem: String,
    },
    /// A Skupper 2.x Link file without the Secret its Links name.
    #[error("the Link file has no Secret: its Links take their certificate from the Secret {tls_credentials:?} (spec.tlsCredentials), which the file must hold")]
    V2SecretMissing {
        /// The Secret the (first) Link names in `spec.tlsCredentials`.
        tls_credentials: String,
    },
    /// A Skupper 2.x Link file with more than one Secret.
    #[error("the Link file holds {count} Secrets; a Link file holds one, the Secret its Links name in spec.tlsCredentials")]
    V2SeveralSecrets {
        /// How many Secrets (at least 2).
        count: usize,
    },
    /// A Secret without any Skupper 2.x Link beside it.
    #[error("the file holds a Secret but no Skupper 2.x Link (kind: Link, apiVersion: skupper.io/v2alpha1): a Link file holds one or more Links and the Secret they name")]
    V2NoLinks,
    /// Two Links of one Link file have the same name.
    #[error("the Link file holds two Links named {name:?}")]
    V2DuplicateLink {
        /// The name.
        name: String,
    },
}

fn describe_not_token(kind: &Option<String>, type_label: &Option<String>) -> String {
    match (kind.as_deref(), type_label.as_deref()) {
        (Some(k), _) if k != "Secret" => format!("kind is {k:?}, expected Secret"),
        (None, _) => "no kind: Secret".to_owned(),
        (_, None) => format!("no {TYPE_LABEL} label; expected {CLAIM_TYPE} or {CERT_TYPE}"),
        (_, Some(l)) => {
            format!("label {TYPE_LABEL} is {l:?}; expected {CLAIM_TYPE} or {CERT_TYPE}")
        }
    }
}

/// ` "name"` for an error message, or nothing.
fn name_suffix(name: &Option<String>) -> String {
    match name.as_deref() {
        Some(name) if !name.is_empty() => format!(" {:?}", crate::v2::shorten(name)),
        _ => String::new(),
    }
}

/// A document's kind, in words: `a ConfigMap (apiVersion "v1")`.
fn describe_kind(api_version: &Option<String>, kind: &Option<String>) -> String {
    let short = |s: &str| crate::v2::shorten(s).into_owned();
    match (api_version.as_deref(), kind.as_deref()) {
        (Some(v), Some(k)) => format!("kind {:?} (apiVersion {:?})", short(k), short(v)),
        (None, Some(k)) => format!("kind {:?} without apiVersion", short(k)),
        (_, None) => "a document without kind".to_owned(),
    }
}

fn type_label_of(kind: &str) -> &'static str {
    if kind == "claim" {
        CLAIM_TYPE
    } else {
        CERT_TYPE
    }
}

// ---------------------------------------------------------------------------
// Files that are not 1.x tokens

/// The kind of one YAML document, and nothing else.
#[derive(serde::Deserialize)]
pub(crate) struct RawHead {
    #[serde(default, rename = "apiVersion")]
    pub(crate) api_version: Option<String>,
    #[serde(default)]
    pub(crate) kind: Option<String>,
}

/// The API group of Skupper 2.x resources (`skupper.io/v2alpha1`).
pub(crate) const V2_API_GROUP: &str = "skupper.io/";

/// What a Skupper 2.x resource is, in words, or `None` when `api_version`
/// and `kind` are not one.
fn skupper_v2(api_version: Option<&str>, kind: Option<&str>) -> Option<String> {
    if !api_version?.starts_with(V2_API_GROUP) {
        return None;
    }
    Some(match kind? {
        "AccessToken" => "a Skupper 2.x AccessToken (made by 'skupper token issue'; the 1.x counterpart is a claim token)".to_owned(),
        "AccessGrant" => "a Skupper 2.x AccessGrant (the issuing site's record of an AccessToken; the 1.x counterpart is a claim record)".to_owned(),
        "Link" => "a Skupper 2.x Link (the 1.x counterpart is a cert token)".to_owned(),
        other => format!("a Skupper 2.x {other} resource"),
    })
}

/// For input with several YAML documents: a Skupper 2.x Link file (Links
/// and their Secret, as `skupper link generate` writes it or a 2.x grant
/// server answers), or just several documents. `None` when the input is not
/// several readable documents.
fn several_documents(bytes: &[u8]) -> Option<DecodeError> {
    let documents: Vec<RawHead> = yaml::documents(bytes).ok()?;
    if documents.len() < 2 {
        return None;
    }
    let links = documents
        .iter()
        .filter(|d| {
            d.kind.as_deref() == Some("Link")
                && d.api_version
                    .as_deref()
                    .is_some_and(|v| v.starts_with(V2_API_GROUP))
        })
        .count();
    let secrets = documents
        .iter()
        .filter(|d| d.kind.as_deref() == Some("Secret"))
        .count();
    if links == 0 {
        return Some(DecodeError::MultipleDocuments {
            count: documents.len(),
        });
    }
    let what = format!(
        "a Skupper 2.x Link file ({links} Link{} and {secrets} Secret{}, as 'skupper link generate' writes it; the 1.x counterpart is a cert token)",
        if links == 1 { "" } else { "s" },
        if secrets == 1 { "" } else { "s" },
    );
    Some(DecodeError::SkupperV2 { what })
}

// ---------------------------------------------------------------------------
// Decoding

/// The parts of a Secret this module reads; everything else is ignored.
#[derive(serde::Deserialize)]
#[serde(rename = "Secret")]
struct RawSecret {
    #[serde(default, rename = "apiVersion")]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    data: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    metadata: Option<RawMetadata>,
}

#[derive(serde::Deserialize)]
#[serde(rename = "metadata")]
struct RawMetadata {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, Option<String>>>,
}

/// A parsed Secret with the kind and type label checked.
struct Secret {
    name: String,
    data: BTreeMap<String, Option<String>>,
    annotations: BTreeMap<String, Option<String>>,
    is_claim: bool,
}

impl Secret {
    fn parse(bytes: &[u8]) -> Result<Secret, DecodeError> {
        if bytes.len() > MAX_TOKEN_BYTES {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: MAX_TOKEN_BYTES,
            });
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(DecodeError::NotYaml {
                reason: "the input is empty".to_owned(),
            });
        }
        let raw: RawSecret = yaml::from_slice(bytes).map_err(|reason| {
            several_documents(bytes).unwrap_or(DecodeError::NotYaml { reason })
        })?;
        if let Some(what) = skupper_v2(raw.api_version.as_deref(), raw.kind.as_deref()) {
            return Err(DecodeError::SkupperV2 { what });
        }
        let metadata = raw.metadata.unwrap_or(RawMetadata {
            name: None,
            annotations: None,
            labels: None,
        });
        let type_label = metadata
            .labels
            .unwrap_or_default()
            .remove(TYPE_LABEL)
            .flatten();
        let not_token = |kind: Option<String>, type_label: Option<String>| {
            DecodeError::NotASkupperToken { kind, type_label }
        };
        if raw.kind.as_deref() != Some("Secret") {
            return Err(not_token(raw.kind, type_label));
        }
        let is_claim = match type_label.as_deref() {
            Some(CLAIM_TYPE) => true,
            Some(CERT_TYPE) => false,
            _ => return Err(not_token(raw.kind, type_label)),
        };
        let name = match metadata.name {
            Some(name) if !name.is_empty() => name,
            _ => return Err(DecodeError::MissingName),
        };
        Ok(Secret {
            name,
            data: raw.data.unwrap_or_default(),
            annotations: metadata.annotations.unwrap_or_default(),
            is_claim,
        })
    }

    /// A data field's base64 text, required.
    fn data_b64(&self, field: &str) -> Result<&str, DecodeError> {
        match self.data.get(field) {
            Some(Some(value)) => Ok(value),
            _ => Err(DecodeError::MissingField {
                field: field.to_owned(),
            }),
        }
    }

    /// A data field decoded from base64 and checked to be UTF-8 text.
    fn data_text(&self, field: &str) -> Result<String, DecodeError> {
        let bytes = decode_base64(field, self.data_b64(field)?)?;
        String::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8 {
            field: field.to_owned(),
        })
    }

    /// An annotation, required (present, not null).
    fn annotation(&self, name: &str) -> Result<&str, DecodeError> {
        match self.annotations.get(name) {
            Some(Some(value)) => Ok(value),
            _ => Err(DecodeError::MissingAnnotation {
                name: name.to_owned(),
            }),
        }
    }

    /// An annotation, required and non-empty.
    fn non_empty_annotation(&self, name: &str) -> Result<&str, DecodeError> {
        match self.annotation(name)? {
            "" => Err(DecodeError::MissingAnnotation {
                name: name.to_owned(),
            }),
            value => Ok(value),
        }
    }

    /// An optional annotation (absent or null gives `None`).
    fn optional_annotation(&self, name: &str) -> Option<&str> {
        self.annotations.get(name).and_then(|v| v.as_deref())
    }

    fn into_claim(self) -> Result<ClaimToken, DecodeError> {
        // Same order as Skupper: data fields, then annotations.
        self.data_b64(CA_CERT_FIELD)?;
        self.data_b64(PASSWORD_FIELD)?;
        let url = self.annotation(URL_ANNOTATION)?.to_owned();
        let issuer_site_id = self.annotation(GENERATED_BY_ANNOTATION)?.to_owned();
        let issuer_version = self
            .optional_annotation(SITE_VERSION_ANNOTATION)
            .unwrap_or_default()
            .to_owned();

        let ca_pem = self.data_text(CA_CERT_FIELD)?;
        check_certificates(CA_CERT_FIELD, &ca_pem)?;
        let password = Password(self.data_text(PASSWORD_FIELD)?);
        parse_claim_url(&url)?;
        let expires_at = match self.optional_annotation(CLAIM_EXPIRATION_ANNOTATION) {
            None => None,
            Some(value) => Some(parse_timestamp(CLAIM_EXPIRATION_ANNOTATION, value)?),
        };
        Ok(ClaimToken {
            name: self.name,
            ca_pem,
            password,
            url,
            issuer_site_id,
            issuer_version,
            expires_at,
        })
    }

    fn into_cert(self) -> Result<CertToken, DecodeError> {
        self.data_b64(CA_CERT_FIELD)?;
        self.data_b64(TLS_CERT_FIELD)?;
        self.data_b64(TLS_KEY_FIELD)?;
        let inter_router =
            self.endpoint(INTER_ROUTER_HOST_ANNOTATION, INTER_ROUTER_PORT_ANNOTATION)?;
        let edge = self.endpoint(EDGE_HOST_ANNOTATION, EDGE_PORT_ANNOTATION)?;
        let issuer_site_id = self.annotation(GENERATED_BY_ANNOTATION)?.to_owned();
        let issuer_version = self
            .optional_annotation(SITE_VERSION_ANNOTATION)
            .unwrap_or_default()
            .to_owned();

        let ca_pem = self.data_text(CA_CERT_FIELD)?;
        check_certificates(CA_CERT_FIELD, &ca_pem)?;
        let cert_pem = self.data_text(TLS_CERT_FIELD)?;
        check_certificates(TLS_CERT_FIELD, &cert_pem)?;
        let key_pem = self.data_text(TLS_KEY_FIELD)?;
        check_private_key(TLS_KEY_FIELD, &key_pem)?;
        Ok(CertToken {
            name: self.name,
            ca_pem,
            cert_pem,
            key_pem: SecretPem(key_pem),
            issuer_site_id,
            issuer_version,
            inter_router,
            edge,
        })
    }

    fn endpoint(
        &self,
        host_annotation: &str,
        port_annotation: &str,
    ) -> Result<Endpoint, DecodeError> {
        let host = self.non_empty_annotation(host_annotation)?.to_owned();
        let port_text = self.annotation(port_annotation)?;
        let port = parse_port(port_text).ok_or_else(|| DecodeError::BadPort {
            annotation: port_annotation.to_owned(),
            value: port_text.to_owned(),
        })?;
        Ok(Endpoint { host, port })
    }
}

fn base64_engine() -> base64::engine::GeneralPurpose {
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    )
}

/// Standard base64 (padding optional, ASCII whitespace ignored).
pub(crate) fn decode_base64(field: &str, text: &str) -> Result<Vec<u8>, DecodeError> {
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    base64_engine()
        .decode(&compact)
        .map_err(|e| DecodeError::BadBase64 {
            field: field.to_owned(),
            reason: e.to_string(),
        })
}

/// A decimal port from 1 to 65535.
pub(crate) fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => None,
        Ok(port) => Some(port),
    }
}

/// RFC 3339, as UTC with whole seconds.
fn parse_timestamp(annotation: &str, value: &str) -> Result<OffsetDateTime, DecodeError> {
    let bad = || DecodeError::BadTimestamp {
        annotation: annotation.to_owned(),
        value: value.to_owned(),
    };
    // Go's time.RFC3339 wants the `T` separator (RFC 3339 also allows a space).
    if !matches!(value.as_bytes().get(10), Some(b'T' | b't')) {
        return Err(bad());
    }
    let t = OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map_err(|_| bad())?;
    let t = t.checked_to_offset(UtcOffset::UTC).ok_or_else(bad)?;
    Ok(t.truncate_to_second())
}

/// Checks a claims URL: `https://<host>[:<port>]/<claim name>`, returning
/// the host and port (443 when none is given).
pub(crate) fn parse_claim_url(url: &str) -> Result<Endpoint, DecodeError> {
    let bad = || DecodeError::BadUrl {
        url: url.to_owned(),
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let scheme_len = "https://".len();
    if url.len() < scheme_len || !url.as_bytes()[..scheme_len].eq_ignore_ascii_case(b"https://") {
        return Err(bad());
    }
    let rest = &url[scheme_len..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    // A claim name after the slash is required.
    if !path.starts_with('/') || path.len() < 2 || authority.contains('@') {
        return Err(bad());
    }
    let (host, port_text) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or_else(bad)?;
        let port_text = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(bad)?),
        };
        (host, port_text)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains(['[', ']']) {
        return Err(bad());
    }
    let port = match port_text {
        None => 443,
        Some(text) => parse_port(text).ok_or_else(bad)?,
    };
    Ok(Endpoint {
        host: host.to_owned(),
        port,
    })
}

/// One PEM block: its label and decoded body.
struct PemBlock {
    label: String,
    der: Vec<u8>,
}

/// Splits PEM text into blocks. Only blank lines may appear outside blocks;
/// each block needs a matching END line and a non-empty base64 body.
fn pem_blocks(text: &str) -> Result<Vec<PemBlock>, String> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for (index, raw_line) in text.lines().enumerate() {
        let line = raw_line.trim();
        let line_no = index + 1;
        match current.take() {
            None => {
                if line.is_empty() {
                    continue;
                }
                let label = line
                    .strip_prefix("-----BEGIN ")
                    .and_then(|l| l.strip_suffix("-----"))
                    .ok_or_else(|| {
                        format!("line {line_no} is outside any -----BEGIN ...----- block")
                    })?;
                if label.is_empty() || label.contains('-') {
                    return Err(format!("line {line_no} has a malformed BEGIN line"));
                }
                current = Some((label.to_owned(), String::new()));
            }
            Some((label, mut body)) => {
                if line.starts_with("-----") {
                    let end_label = line
                        .strip_prefix("-----END ")
                        .and_then(|l| l.strip_suffix("-----"));
                    if end_label != Some(label.as_str()) {
                        return Err(format!("line {line_no}: expected -----END {label}-----"));
                    }
                    if body.is_empty() {
                        return Err(format!("the {label} block is empty"));
                    }
                    let der = base64_engine()
                        .decode(body.as_bytes())
                        .map_err(|e| format!("the {label} block is not valid base64: {e}"))?;
                    if der.is_empty() {
                        return Err(format!("the {label} block is empty"));
                    }
                    blocks.push(PemBlock { label, der });
                } else {
                    if line.contains(':') {
                        return Err(format!(
                            "the {label} block has headers (an encrypted key?): use an unencrypted PEM"
                        ));
                    }
                    body.push_str(line);
                    current = Some((label, body));
                }
            }
        }
    }
    if let Some((label, _)) = current {
        return Err(format!(
            "the {label} block has no -----END {label}----- line"
        ));
    }
    if blocks.is_empty() {
        return Err("no PEM block found".to_owned());
    }
    Ok(blocks)
}

/// Checks that `pem` is one or more `CERTIFICATE` blocks, each an X.509
/// certificate.
pub(crate) fn check_certificates(field: &str, pem: &str) -> Result<(), DecodeError> {
    let blocks = pem_blocks(pem).map_err(|reason| DecodeError::BadPem {
        field: field.to_owned(),
        reason,
    })?;
    for block in blocks {
        if block.label != "CERTIFICATE" {
            return Err(DecodeError::BadPem {
                field: field.to_owned(),
                reason: format!("found a {} block, expected CERTIFICATE", block.label),
            });
        }
        match x509_parser::parse_x509_certificate(&block.der) {
            Ok(([], _cert)) => {}
            Ok((rest, _cert)) => {
                return Err(DecodeError::NotACertificate {
                    field: field.to_owned(),
                    reason: format!("{} bytes after the certificate", rest.len()),
                })
            }
            Err(e) => {
                return Err(DecodeError::NotACertificate {
                    field: field.to_owned(),
                    reason: e.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// Checks that `pem` is exactly one private key block: PKCS#8 `PRIVATE
/// KEY`, SEC1 `EC PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`, holding a DER
/// SEQUENCE.
pub(crate) fn check_private_key(field: &str, pem: &str) -> Result<(), DecodeError> {
    let bad = |reason: String| DecodeError::BadPem {
        field: field.to_owned(),
        reason,
    };
    let blocks = pem_blocks(pem).map_err(bad)?;
    if blocks.len() != 1 {
        return Err(bad(format!(
            "found {} PEM blocks, expected one private key",
            blocks.len()
        )));
    }
    let block = &blocks[0];
    if !matches!(
        block.label.as_str(),
        "PRIVATE KEY" | "EC PRIVATE KEY" | "RSA PRIVATE KEY"
    ) {
        return Err(bad(format!(
            "found a {} block, expected PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY",
            block.label
        )));
    }
    if block.der.first() != Some(&0x30) {
        return Err(bad(format!("the {} block is not DER", block.label)));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Encoding

pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Writes `<indent><key>: <value>\n` with the value as a YAML scalar.
pub(crate) fn put(out: &mut String, indent: usize, key: &str, value: &str) {
    for _ in 0..indent {
        out.push(' ');
    }
    out.push_str(key);
    out.push_str(": ");
    out.push_str(&yaml::scalar(value));
    out.push('\n');
}

/// RFC 3339 in UTC without fractional seconds, as Go's `time.RFC3339`.
fn format_timestamp(t: OffsetDateTime) -> String {
    let t = t.checked_to_offset(UtcOffset::UTC).unwrap_or(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

impl ClaimToken {
    /// Writes the token file: a Secret in Skupper's exact YAML layout.
    ///
    /// `skupper.io/claim-expiration` is written only when [`Self::expires_at`]
    /// is set (as UTC, whole seconds); `skupper.io/site-version` only when
    /// [`Self::issuer_version`] is not empty.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("apiVersion: v1\ndata:\n");
        put(
            &mut out,
            2,
            CA_CERT_FIELD,
            &encode_base64(self.ca_pem.as_bytes()),
        );
        put(
            &mut out,
            2,
            PASSWORD_FIELD,
            &encode_base64(self.password.expose().as_bytes()),
        );
        out.push_str("kind: Secret\nmetadata:\n  annotations:\n");
        if let Some(expires_at) = self.expires_at {
            put(
                &mut out,
                4,
                CLAIM_EXPIRATION_ANNOTATION,
                &format_timestamp(expires_at),
            );
        }
        put(&mut out, 4, GENERATED_BY_ANNOTATION, &self.issuer_site_id);
        if !self.issuer_version.is_empty() {
            put(&mut out, 4, SITE_VERSION_ANNOTATION, &self.issuer_version);
        }
        put(&mut out, 4, URL_ANNOTATION, &self.url);
        out.push_str("  creationTimestamp: null\n  labels:\n");
        put(&mut out, 4, TYPE_LABEL, CLAIM_TYPE);
        put(&mut out, 2, "name", &self.name);
        out
    }

    /// Reads a claim token file; a cert token gives [`DecodeError::WrongType`].
    pub fn decode(bytes: &[u8]) -> Result<ClaimToken, DecodeError> {
        let secret = Secret::parse(bytes)?;
        if !secret.is_claim {
            return Err(DecodeError::WrongType {
                expected: "claim",
                found: "cert",
            });
        }
        secret.into_claim()
    }

    /// The host and port of the claims URL (443 when the URL has none).
    pub fn endpoint(&self) -> Result<Endpoint, DecodeError> {
        parse_claim_url(&self.url)
    }
}

impl CertToken {
    /// Writes the token file: a Secret in Skupper's exact YAML layout
    /// (`type: kubernetes.io/tls`, ports as quoted strings).
    /// `skupper.io/site-version` is written only when
    /// [`Self::issuer_version`] is not empty.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8192);
        out.push_str("apiVersion: v1\ndata:\n");
        put(
            &mut out,
            2,
            CA_CERT_FIELD,
            &encode_base64(self.ca_pem.as_bytes()),
        );
        put(
            &mut out,
            2,
            TLS_CERT_FIELD,
            &encode_base64(self.cert_pem.as_bytes()),
        );
        put(
            &mut out,
            2,
            TLS_KEY_FIELD,
            &encode_base64(self.key_pem.expose().as_bytes()),
        );
        out.push_str("kind: Secret\nmetadata:\n  annotations:\n");
        put(&mut out, 4, EDGE_HOST_ANNOTATION, &self.edge.host);
        put(
            &mut out,
            4,
            EDGE_PORT_ANNOTATION,
            &self.edge.port.to_string(),
        );
        put(
            &mut out,
            4,
            INTER_ROUTER_HOST_ANNOTATION,
            &self.inter_router.host,
        );
        put(
            &mut out,
            4,
            INTER_ROUTER_PORT_ANNOTATION,
            &self.inter_router.port.to_string(),
        );
        put(&mut out, 4, GENERATED_BY_ANNOTATION, &self.issuer_site_id);
        if !self.issuer_version.is_empty() {
            put(&mut out, 4, SITE_VERSION_ANNOTATION, &self.issuer_version);
        }
        out.push_str("  creationTimestamp: null\n  labels:\n");
        put(&mut out, 4, TYPE_LABEL, CERT_TYPE);
        put(&mut out, 2, "name", &self.name);
        out.push_str("type: kubernetes.io/tls\n");
        out
    }

    /// Reads a cert token file; a claim token gives [`DecodeError::WrongType`].
    pub fn decode(bytes: &[u8]) -> Result<CertToken, DecodeError> {
        let secret = Secret::parse(bytes)?;
        if secret.is_claim {
            return Err(DecodeError::WrongType {
                expected: "cert",
                found: "claim",
            });
        }
        secret.into_cert()
    }
}

impl Token {
    /// Reads a token file of either kind from untrusted bytes.
    ///
    /// Never panics. Refuses input over [`MAX_TOKEN_BYTES`]. Checks that
    /// `ca.crt` and `tls.crt` are PEM `CERTIFICATE` blocks holding X.509
    /// certificates, that `tls.key` is one PEM private key, that ports are
    /// 1-65535, the claims URL is `https://host[:port]/name` and the expiry
    /// is RFC 3339. Ignores `ownerReferences`, `creationTimestamp`, `type`
    /// and unknown annotations, labels and data fields.
    pub fn decode(bytes: &[u8]) -> Result<Token, DecodeError> {
        let secret = Secret::parse(bytes)?;
        if secret.is_claim {
            secret.into_claim().map(Token::Claim)
        } else {
            secret.into_cert().map(Token::Cert)
        }
    }

    /// Writes the token file in Skupper's exact YAML layout.
    pub fn encode(&self) -> String {
        match self {
            Token::Claim(t) => t.encode(),
            Token::Cert(t) => t.encode(),
        }
    }

    /// The token's name (`metadata.name`).
    pub fn name(&self) -> &str {
        match self {
            Token::Claim(t) => &t.name,
            Token::Cert(t) => &t.name,
        }
    }

    /// The issuing site's id (`skupper.io/generated-by`).
    pub fn issuer_site_id(&self) -> &str {
        match self {
            Token::Claim(t) => &t.issuer_site_id,
            Token::Cert(t) => &t.issuer_site_id,
        }
    }

    /// The issuing site's Skupper version (`skupper.io/site-version`).
    pub fn issuer_version(&self) -> &str {
        match self {
            Token::Claim(t) => &t.issuer_version,
            Token::Cert(t) => &t.issuer_version,
        }
    }

    /// The issuing site's CA certificate, PEM text.
    pub fn ca_pem(&self) -> &str {
        match self {
            Token::Claim(t) => &t.ca_pem,
            Token::Cert(t) => &t.ca_pem,
        }
    }

    /// The `skupper.io/type` label value: `token-claim` or `connection-token`.
    pub fn type_label(&self) -> &'static str {
        match self {
            Token::Claim(_) => CLAIM_TYPE,
            Token::Cert(_) => CERT_TYPE,
        }
    }
}

/// Any token file a site may be given to link with: a Skupper 1.x claim or
/// cert token, a Skupper 2.x AccessToken, or a Skupper 2.x Link file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFile {
    /// A Skupper 1.x claim or cert token.
    V1(Token),
    /// A Skupper 2.x AccessToken (to redeem at its grant server).
    AccessToken(crate::v2::AccessToken),
    /// A Skupper 2.x Link file (Links and their Secret).
    LinkFile(crate::v2::LinkFile),
}

/// What [`TokenFile::decode`] reads, in words (for errors).
const TOKEN_FILE: &str = "a token file: a Skupper 1.x claim or cert token, a Skupper 2.x AccessToken or a Skupper 2.x Link file";

impl TokenFile {
    /// Reads a token file of any generation from untrusted bytes.
    ///
    /// Never panics. A file whose documents are all outside `skupper.io/`
    /// is read as [`Token::decode`] reads it (with its errors); a single
    /// `skupper.io/` AccessToken as [`crate::v2::AccessToken::decode`]; a
    /// `skupper.io/` Link, or several documents one of which is
    /// `skupper.io/`, as [`crate::v2::LinkFile::decode`]. An AccessGrant is
    /// refused with [`DecodeError::AccessGrant`] (it is the issuing site's
    /// record, not a token), any other `skupper.io/` kind with
    /// [`DecodeError::V2UnexpectedKind`].
    pub fn decode(bytes: &[u8]) -> Result<TokenFile, DecodeError> {
        if bytes.len() > MAX_TOKEN_BYTES {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: MAX_TOKEN_BYTES,
            });
        }
        let v1 = || Token::decode(bytes).map(TokenFile::V1);
        let Ok(heads) = yaml::documents::<Option<RawHead>>(bytes) else {
            return v1();
        };
        let heads: Vec<RawHead> = heads.into_iter().flatten().collect();
        let is_v2 = |h: &RawHead| {
            h.api_version
                .as_deref()
                .is_some_and(|v| v.starts_with(V2_API_GROUP))
        };
        match heads.as_slice() {
            [one] if is_v2(one) => match one.kind.as_deref() {
                Some(crate::v2::ACCESS_TOKEN_KIND | crate::v2::ACCESS_GRANT_KIND) => {
                    crate::v2::AccessToken::decode(bytes).map(TokenFile::AccessToken)
                }
                Some(crate::v2::LINK_KIND) => {
                    crate::v2::LinkFile::decode(bytes).map(TokenFile::LinkFile)
                }
                _ => Err(DecodeError::V2UnexpectedKind {
                    document: 1,
                    api_version: one.api_version.clone(),
                    kind: one.kind.clone(),
                    expected: TOKEN_FILE,
                }),
            },
            several if several.len() > 1 && several.iter().any(is_v2) => {
                crate::v2::LinkFile::decode(bytes).map(TokenFile::LinkFile)
            }
            _ => v1(),
        }
    }

    /// Writes the file in Skupper's exact layout (a Link file as `skupper
    /// link generate` writes it).
    pub fn encode(&self) -> String {
        match self {
            TokenFile::V1(token) => token.encode(),
            TokenFile::AccessToken(token) => token.encode(),
            TokenFile::LinkFile(file) => file.encode_generated(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        let p = Password::from("hunter2");
        assert_eq!(format!("{p:?}"), "Password(<redacted>)");
        assert_eq!(format!("{p}"), "Password(<redacted>)");
        assert_eq!(p.expose(), "hunter2");
        let k = SecretPem::new("-----BEGIN PRIVATE KEY-----");
        assert_eq!(format!("{k:?}"), "SecretPem(<redacted>)");
        assert_eq!(format!("{k}"), "SecretPem(<redacted>)");
    }

    #[test]
    fn endpoint_display() {
        let e = Endpoint {
            host: "west.example.com".into(),
            port: 55671,
        };
        assert_eq!(e.to_string(), "west.example.com:55671");
        let e = Endpoint {
            host: "::1".into(),
            port: 8081,
        };
        assert_eq!(e.to_string(), "[::1]:8081");
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port("45671"), Some(45671));
        assert_eq!(parse_port("65535"), Some(65535));
        assert_eq!(parse_port("1"), Some(1));
        for bad in [
            "", "0", "65536", "-1", "+1", " 1", "1 ", "0x10", "999999", "1.0",
        ] {
            assert_eq!(parse_port(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn claim_urls() {
        let ok = |u: &str| parse_claim_url(u).unwrap_or_else(|e| panic!("{u}: {e}"));
        assert_eq!(
            ok("https://claims.example.com:8081/6fe5599e-ae73-11ee-b75a-902e1655a5fe"),
            Endpoint {
                host: "claims.example.com".into(),
                port: 8081
            }
        );
        assert_eq!(ok("https://10.0.0.1/x").port, 443);
        assert_eq!(ok("HTTPS://h:1/x").host, "h");
        assert_eq!(
            ok("https://[fd00::1]:9090/c"),
            Endpoint {
                host: "fd00::1".into(),
                port: 9090
            }
        );
        for bad in [
            "",
            "http://h:1/x",
            "https://",
            "https://h:1",
            "https://h:1/",
            "https://:1/x",
            "https://h:0/x",
            "https://h:99999/x",
            "https://h:/x",
            "https://u@h:1/x",
            "https://h 1/x",
            "https://[fd00::1/x",
            "https://[fd00::1]x/x",
            "https://h:1:2/x",
            "ftp://h/x",
            "https://h:1/x\n",
            "httpsé://h/x",
        ] {
            assert!(
                matches!(parse_claim_url(bad), Err(DecodeError::BadUrl { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn timestamps() {
        let t = parse_timestamp("a", "2026-11-28T10:15:00Z").unwrap();
        assert_eq!(format_timestamp(t), "2026-11-28T10:15:00Z");
        let t = parse_timestamp("a", "2026-11-28T11:15:00.75+01:00").unwrap();
        assert_eq!(format_timestamp(t), "2026-11-28T10:15:00Z");
        assert_eq!(t.offset(), UtcOffset::UTC);
        assert_eq!(t.nanosecond(), 0);
        for bad in [
            "",
            "2026-11-28",
            "2026-11-28 10:15:00Z",
            "tomorrow",
            "2026-13-01T00:00:00Z",
        ] {
            assert!(matches!(
                parse_timestamp("a", bad),
                Err(DecodeError::BadTimestamp { .. })
            ));
        }
        let t = time::macros::datetime!(2026-11-28 10:15:00.999 UTC);
        assert_eq!(format_timestamp(t), "2026-11-28T10:15:00Z");
        let t = time::macros::datetime!(2026-11-28 12:15:00 +02:00);
        assert_eq!(format_timestamp(t), "2026-11-28T10:15:00Z");
    }

    #[test]
    fn pem_parsing() {
        let ca = include_str!("../tests/data/ca.crt");
        assert!(check_certificates("ca.crt", ca).is_ok());
        let chain = format!("{}\n{}", include_str!("../tests/data/tls.crt"), ca);
        assert!(check_certificates("tls.crt", &chain).is_ok());
        for key in [
            include_str!("../tests/data/tls.key"),
            include_str!("../tests/data/ec-sec1.key"),
            include_str!("../tests/data/pkcs8.key"),
        ] {
            assert!(check_private_key("tls.key", key).is_ok());
            // A key is not a certificate.
            assert!(matches!(
                check_certificates("ca.crt", key),
                Err(DecodeError::BadPem { .. })
            ));
        }
        // A certificate is not a key.
        assert!(matches!(
            check_private_key("tls.key", ca),
            Err(DecodeError::BadPem { .. })
        ));
        let bad_pems = [
            "",
            "\n\n",
            "junk",
            "-----BEGIN CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END KEY-----\n",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            "-----BEGIN -----\nMIIB\n-----END -----\n",
        ];
        for bad in bad_pems {
            assert!(
                matches!(
                    check_certificates("ca.crt", bad),
                    Err(DecodeError::BadPem { .. })
                ),
                "{bad:?}"
            );
        }
        // Valid PEM, not X.509.
        let not_x509 = "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            check_certificates("ca.crt", not_x509),
            Err(DecodeError::NotACertificate { .. })
        ));
        // Encrypted (headers) and doubled keys are refused.
        let encrypted = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nMAMCAQA=\n-----END RSA PRIVATE KEY-----\n";
        assert!(check_private_key("tls.key", encrypted).is_err());
        let two = format!(
            "{}{}",
            include_str!("../tests/data/pkcs8.key"),
            include_str!("../tests/data/pkcs8.key")
        );
        assert!(check_private_key("tls.key", &two).is_err());
        // CRLF line endings are fine.
        assert!(check_certificates("ca.crt", &ca.replace('\n', "\r\n")).is_ok());
    }

    #[test]
    fn not_token_messages() {
        let e = DecodeError::NotASkupperToken {
            kind: Some("ConfigMap".into()),
            type_label: None,
        };
        assert_eq!(
            e.to_string(),
            "Secret is not a valid skupper token (kind is \"ConfigMap\", expected Secret)"
        );
        let e = DecodeError::NotASkupperToken {
            kind: Some("Secret".into()),
            type_label: Some("foo".into()),
        };
        assert_eq!(
            e.to_string(),
            "Secret is not a valid skupper token (label skupper.io/type is \"foo\"; expected token-claim or connection-token)"
        );
        let e = DecodeError::WrongType {
            expected: "claim",
            found: "cert",
        };
        assert_eq!(
            e.to_string(),
            "expected a claim token (skupper.io/type: token-claim) but this is a cert token (skupper.io/type: connection-token)"
        );
    }
}
