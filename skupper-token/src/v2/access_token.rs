//! The AccessToken file (`skupper token issue FILE`): where to redeem a
//! grant, the CA to trust there, the code, and the cost of the links made.

use super::raw::{self, Fields, RawDocument};
use super::write::{put_number, put_text};
use super::{AccessCode, ACCESS_GRANT_KIND, ACCESS_TOKEN_KIND, API_VERSION};
use crate::token::{self, put, DecodeError, Endpoint};

/// What [`AccessToken::decode`] expects, in words (for errors).
const EXPECTED: &str =
    "a Skupper 2.x AccessToken (apiVersion: skupper.io/v2alpha1, kind: AccessToken)";

/// A Skupper 2.x AccessToken: redeemed once (or as often as its grant
/// allows) at [`Self::url`] for a Link and its Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The token's name (`metadata.name`): sent as the `name` header, it
    /// names the Secret and Link the grant server returns.
    pub name: String,
    /// The grant server's CA (`spec.ca`, PEM): the only CA a redeemer
    /// trusts for [`Self::url`].
    pub ca_pem: String,
    /// The code to post (`spec.code`).
    pub code: AccessCode,
    /// The cost of the links made from this token (`spec.linkCost`); 0
    /// (left out of the file) keeps the cost the grant server gives.
    pub link_cost: u32,
    /// Where to redeem it (`spec.url`): `https://<host>:<port>/<grant id>`.
    pub url: String,
}

impl AccessToken {
    /// Reads an AccessToken file from untrusted bytes.
    ///
    /// Never panics. Refuses input over
    /// [`MAX_TOKEN_BYTES`](crate::token::MAX_TOKEN_BYTES), files that are not
    /// one `skupper.io/v2alpha1` AccessToken (a 1.x token gives
    /// [`DecodeError::SkupperV1`], an AccessGrant
    /// [`DecodeError::AccessGrant`]), a missing `metadata.name`, `spec.ca`,
    /// `spec.code` or `spec.url` ([`DecodeError::V2MissingField`]), and a
    /// `spec.ca` that is not X.509 certificates, a `spec.url` that is not
    /// `https://<host>[:<port>]/<grant id>` or a `spec.linkCost` that is not
    /// a number from 0 ([`DecodeError::V2BadField`]). The code may be any
    /// non-empty text, as for Skupper (the codes Skupper and this crate
    /// make are 24 characters from `[a-zA-Z0-9]`). Ignores `status` and
    /// unknown fields.
    pub fn decode(bytes: &[u8]) -> Result<AccessToken, DecodeError> {
        let documents = raw::documents(bytes)?;
        let first = &documents[0];
        if let Some(kind) = first.skupper_v1() {
            return Err(DecodeError::SkupperV1 {
                kind,
                expected: "a Skupper 2.x AccessToken",
            });
        }
        if first.is(ACCESS_GRANT_KIND) {
            return Err(DecodeError::AccessGrant {
                name: first.name().map(str::to_owned),
            });
        }
        if !first.is(ACCESS_TOKEN_KIND) {
            return Err(first.unexpected(1, EXPECTED));
        }
        if let Some(second) = documents.get(1) {
            return Err(second.unexpected(
                2,
                "nothing after the AccessToken (an AccessToken file holds one document)",
            ));
        }
        Self::from_raw(first)
    }

    fn from_raw(doc: &RawDocument) -> Result<AccessToken, DecodeError> {
        let resource = raw::resource(ACCESS_TOKEN_KIND, doc.name(), None);
        let fields = Fields {
            resource: &resource,
        };
        let name = doc
            .name()
            .ok_or_else(|| fields.missing("metadata.name"))?
            .to_owned();
        let spec = doc.spec.as_ref().ok_or_else(|| fields.missing("spec"))?;
        let ca_pem = fields.required("spec.ca", Some(&spec.ca))?.to_owned();
        fields.certificates("spec.ca", &ca_pem)?;
        let code = AccessCode::new(fields.required("spec.code", Some(&spec.code))?);
        let link_cost = fields.cost("spec.linkCost", spec.link_cost.as_deref())?;
        let url = fields.required("spec.url", Some(&spec.url))?.to_owned();
        if token::parse_claim_url(&url).is_err() {
            return Err(fields.bad(
                "spec.url",
                format!(
                    "is not https://<host>:<port>/<grant id>: {:?}",
                    super::shorten(&url)
                ),
            ));
        }
        Ok(AccessToken {
            name,
            ca_pem,
            code,
            link_cost,
            url,
        })
    }

    /// Writes the file exactly as `skupper token issue` does: keys in
    /// alphabetical order, `spec.ca` as a literal block, `spec.linkCost`
    /// only when it is over 0, no `creationTimestamp` and no `status`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(2048);
        put(&mut out, 0, "apiVersion", API_VERSION);
        put(&mut out, 0, "kind", ACCESS_TOKEN_KIND);
        out.push_str("metadata:\n");
        put(&mut out, 2, "name", &self.name);
        out.push_str("spec:\n");
        put_text(&mut out, 2, "ca", &self.ca_pem);
        put(&mut out, 2, "code", self.code.expose());
        if self.link_cost > 0 {
            put_number(&mut out, 2, "linkCost", self.link_cost);
        }
        put(&mut out, 2, "url", &self.url);
        out
    }

    /// The grant server's host and port (443 when the URL has none).
    pub fn endpoint(&self) -> Result<Endpoint, DecodeError> {
        token::parse_claim_url(&self.url).map_err(|_| DecodeError::V2BadField {
            resource: raw::resource(ACCESS_TOKEN_KIND, Some(&self.name), None),
            field: "spec.url".to_owned(),
            problem: format!(
                "is not https://<host>:<port>/<grant id>: {:?}",
                super::shorten(&self.url)
            ),
        })
    }
}
