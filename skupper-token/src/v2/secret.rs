//! The TLS Secret of a Skupper 2.x Link file (`type: kubernetes.io/tls`):
//! the CA that signs link certificates, the certificate and its key.

use super::link::Layout;
use super::raw::{self, Fields, RawDocument};
use crate::token::{
    encode_base64, put, DecodeError, SecretPem, CA_CERT_FIELD, TLS_CERT_FIELD, TLS_KEY_FIELD,
};

/// The Secret a Link names in `spec.tlsCredentials`. Unlike a 1.x cert
/// token it has no labels or annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSecret {
    /// The Secret's name (`metadata.name`).
    pub name: String,
    /// The CA of the site to connect to, which signs link certificates
    /// (`data.ca.crt`, PEM). Not necessarily the AccessToken's `spec.ca`,
    /// which is the grant server's.
    pub ca_pem: String,
    /// The certificate to connect with, and any chain (`data.tls.crt`, PEM).
    pub cert_pem: String,
    /// Its private key (`data.tls.key`, PEM).
    pub key_pem: SecretPem,
}

impl TlsSecret {
    /// Reads document number `document` (from 1) of a file, known to be a
    /// Secret.
    pub(super) fn from_raw(doc: &RawDocument, document: usize) -> Result<TlsSecret, DecodeError> {
        let resource = raw::resource("Secret", doc.name(), Some(document));
        let fields = Fields {
            resource: &resource,
        };
        let name = doc
            .name()
            .ok_or_else(|| fields.missing("metadata.name"))?
            .to_owned();
        let empty = Default::default();
        let data = doc.data.as_ref().unwrap_or(&empty);
        let ca_pem = fields.data_text(data, CA_CERT_FIELD)?;
        fields.certificates("data.ca.crt", &ca_pem)?;
        let cert_pem = fields.data_text(data, TLS_CERT_FIELD)?;
        fields.certificates("data.tls.crt", &cert_pem)?;
        let key_pem = fields.data_text(data, TLS_KEY_FIELD)?;
        fields.private_key("data.tls.key", &key_pem)?;
        Ok(TlsSecret {
            name,
            ca_pem,
            cert_pem,
            key_pem: SecretPem::new(key_pem),
        })
    }

    /// Writes the Secret document in `layout` (the grant server's adds
    /// `creationTimestamp: null`).
    pub(super) fn write(&self, out: &mut String, layout: Layout) {
        out.push_str("apiVersion: v1\ndata:\n");
        put(
            out,
            2,
            CA_CERT_FIELD,
            &encode_base64(self.ca_pem.as_bytes()),
        );
        put(
            out,
            2,
            TLS_CERT_FIELD,
            &encode_base64(self.cert_pem.as_bytes()),
        );
        put(
            out,
            2,
            TLS_KEY_FIELD,
            &encode_base64(self.key_pem.expose().as_bytes()),
        );
        out.push_str("kind: Secret\nmetadata:\n");
        if layout == Layout::GrantResponse {
            out.push_str("  creationTimestamp: null\n");
        }
        put(out, 2, "name", &self.name);
        out.push_str("type: kubernetes.io/tls\n");
    }
}
