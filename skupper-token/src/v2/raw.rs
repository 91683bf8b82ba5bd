//! The shape of Skupper 2.x documents as read from YAML, and the checks
//! that turn their fields into values or into errors naming the resource,
//! the document and the field.
//!
//! One struct holds the fields of every kind read here (AccessToken, Link,
//! Secret): every field is optional, unknown fields are ignored, and each
//! decoder takes what its kind needs.

use std::collections::BTreeMap;

use crate::token::{self, DecodeError, CERT_TYPE, CLAIM_TYPE, MAX_TOKEN_BYTES, TYPE_LABEL};
use crate::yaml;

/// One YAML document.
#[derive(serde::Deserialize, Default)]
#[serde(rename = "resource")]
pub(super) struct RawDocument {
    #[serde(default, rename = "apiVersion")]
    pub(super) api_version: Option<String>,
    #[serde(default)]
    pub(super) kind: Option<String>,
    #[serde(default)]
    pub(super) metadata: Option<RawMetadata>,
    #[serde(default)]
    pub(super) spec: Option<RawSpec>,
    #[serde(default)]
    pub(super) data: Option<BTreeMap<String, Option<String>>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename = "metadata")]
pub(super) struct RawMetadata {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) labels: Option<BTreeMap<String, Option<String>>>,
}

/// The `spec` fields of an AccessToken and of a Link. Numbers are read as
/// text and checked here, so that the error names the field.
#[derive(serde::Deserialize, Default)]
#[serde(rename = "spec")]
pub(super) struct RawSpec {
    #[serde(default)]
    pub(super) ca: Option<String>,
    #[serde(default)]
    pub(super) code: Option<String>,
    #[serde(default, rename = "linkCost")]
    pub(super) link_cost: Option<String>,
    #[serde(default)]
    pub(super) url: Option<String>,
    #[serde(default)]
    pub(super) cost: Option<String>,
    #[serde(default)]
    pub(super) endpoints: Option<Vec<Option<RawEndpoint>>>,
    #[serde(default, rename = "tlsCredentials")]
    pub(super) tls_credentials: Option<String>,
    #[serde(default)]
    pub(super) settings: Option<BTreeMap<String, Option<String>>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename = "endpoint")]
pub(super) struct RawEndpoint {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) host: Option<String>,
    #[serde(default)]
    pub(super) port: Option<String>,
    #[serde(default)]
    pub(super) group: Option<String>,
}

impl RawDocument {
    /// `metadata.name`, if present and not empty.
    pub(super) fn name(&self) -> Option<&str> {
        self.metadata
            .as_ref()
            .and_then(|m| m.name.as_deref())
            .filter(|n| !n.is_empty())
    }

    /// Whether this is a Skupper 2.x resource of `kind`.
    pub(super) fn is(&self, kind: &str) -> bool {
        self.api_version.as_deref() == Some(super::API_VERSION)
            && self.kind.as_deref() == Some(kind)
    }

    /// Whether this is a Kubernetes Secret (`apiVersion: v1`, `kind: Secret`).
    pub(super) fn is_secret(&self) -> bool {
        self.api_version.as_deref() == Some("v1") && self.kind.as_deref() == Some("Secret")
    }

    /// For a Skupper 1.x token (a Secret with a `skupper.io/type` label of a
    /// claim or cert token): `claim` or `cert`.
    pub(super) fn skupper_v1(&self) -> Option<&'static str> {
        if self.kind.as_deref() != Some("Secret") {
            return None;
        }
        let label = self
            .metadata
            .as_ref()?
            .labels
            .as_ref()?
            .get(TYPE_LABEL)?
            .as_deref()?;
        match label {
            CLAIM_TYPE => Some("claim"),
            CERT_TYPE => Some("cert"),
            _ => None,
        }
    }

    /// The error for a document of the wrong kind.
    pub(super) fn unexpected(&self, document: usize, expected: &'static str) -> DecodeError {
        DecodeError::V2UnexpectedKind {
            document,
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            expected,
        }
    }
}

/// Reads every YAML document of a file (empty documents are skipped), within
/// the size cap of token files.
pub(super) fn documents(bytes: &[u8]) -> Result<Vec<RawDocument>, DecodeError> {
    if bytes.len() > MAX_TOKEN_BYTES {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: MAX_TOKEN_BYTES,
        });
    }
    let documents: Vec<Option<RawDocument>> =
        yaml::documents(bytes).map_err(|reason| DecodeError::NotYaml { reason })?;
    let documents: Vec<RawDocument> = documents.into_iter().flatten().collect();
    if documents.is_empty() {
        return Err(DecodeError::NotYaml {
            reason: "the input is empty".to_owned(),
        });
    }
    Ok(documents)
}

/// A resource in words, for errors: `Link "l1" (YAML document 2)`.
pub(super) fn resource(kind: &str, name: Option<&str>, document: Option<usize>) -> String {
    let mut out = kind.to_owned();
    if let Some(name) = name {
        out.push_str(&format!(" {:?}", super::shorten(name)));
    }
    if let Some(document) = document {
        out.push_str(&format!(" (YAML document {document})"));
    }
    out
}

/// Builds the errors of one resource.
pub(super) struct Fields<'a> {
    pub(super) resource: &'a str,
}

impl Fields<'_> {
    pub(super) fn missing(&self, field: impl Into<String>) -> DecodeError {
        DecodeError::V2MissingField {
            resource: self.resource.to_owned(),
            field: field.into(),
        }
    }

    pub(super) fn bad(&self, field: impl Into<String>, problem: impl Into<String>) -> DecodeError {
        DecodeError::V2BadField {
            resource: self.resource.to_owned(),
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// A required text field: present, not null, not empty.
    pub(super) fn required<'v>(
        &self,
        field: &str,
        value: Option<&'v Option<String>>,
    ) -> Result<&'v str, DecodeError> {
        match value {
            Some(Some(text)) if !text.is_empty() => Ok(text),
            _ => Err(self.missing(field)),
        }
    }

    /// A cost: absent or a whole number from 0 to `u32::MAX`.
    pub(super) fn cost(&self, field: &str, value: Option<&str>) -> Result<u32, DecodeError> {
        let Some(text) = value else { return Ok(0) };
        if text.starts_with('-') && text.len() > 1 && text[1..].bytes().all(|b| b.is_ascii_digit())
        {
            return Err(self.bad(field, "is negative: a cost is 0 or more"));
        }
        if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.bad(
                field,
                format!(
                    "is not a whole number from 0 to {}: {:?}",
                    u32::MAX,
                    super::shorten(text)
                ),
            ));
        }
        text.parse::<u32>().map_err(|_| {
            self.bad(
                field,
                format!("is over {}: {:?}", u32::MAX, super::shorten(text)),
            )
        })
    }

    /// A port: a decimal number from 1 to 65535.
    pub(super) fn port(&self, field: &str, text: &str) -> Result<u16, DecodeError> {
        token::parse_port(text).ok_or_else(|| {
            self.bad(
                field,
                format!("is not a port number (1-65535): {:?}", super::shorten(text)),
            )
        })
    }

    /// The PEM text of base64 `data.<key>`.
    pub(super) fn data_text(
        &self,
        data: &BTreeMap<String, Option<String>>,
        key: &str,
    ) -> Result<String, DecodeError> {
        let field = format!("data.{key}");
        let b64 = self.required(&field, data.get(key))?;
        let bytes = token::decode_base64(key, b64).map_err(|e| self.field_error(&field, e))?;
        String::from_utf8(bytes).map_err(|_| self.bad(&field, "is not UTF-8 text"))
    }

    /// Checks that `pem` is one or more X.509 certificates.
    pub(super) fn certificates(&self, field: &str, pem: &str) -> Result<(), DecodeError> {
        token::check_certificates(field, pem).map_err(|e| self.field_error(field, e))
    }

    /// Checks that `pem` is one PEM private key.
    pub(super) fn private_key(&self, field: &str, pem: &str) -> Result<(), DecodeError> {
        token::check_private_key(field, pem).map_err(|e| self.field_error(field, e))
    }

    /// A 1.x field error (base64, PEM, X.509) as this resource's.
    fn field_error(&self, field: &str, error: DecodeError) -> DecodeError {
        let problem = match error {
            DecodeError::BadBase64 { reason, .. } => format!("is not valid base64: {reason}"),
            DecodeError::BadPem { reason, .. } => format!("is not valid PEM: {reason}"),
            DecodeError::NotACertificate { reason, .. } => {
                format!("holds a CERTIFICATE block that is not a valid X.509 certificate: {reason}")
            }
            DecodeError::NotUtf8 { .. } => "is not UTF-8 text".to_owned(),
            other => return other,
        };
        self.bad(field, problem)
    }
}
