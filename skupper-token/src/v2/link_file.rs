//! A Skupper 2.x Link file: Links and the Secret they connect with, in
//! either of the two layouts Skupper writes.

use super::link::{Layout, Link};
use super::raw;
use super::secret::TlsSecret;
use super::LINK_KIND;
use crate::token::DecodeError;

/// What a Link file's documents may be, in words (for errors).
const EXPECTED: &str =
    "a Skupper 2.x Link (apiVersion: skupper.io/v2alpha1, kind: Link) or a Secret (apiVersion: v1, kind: Secret)";

/// Links and their Secret: what `skupper link generate` prints (the Links,
/// then the Secret) and what a grant server answers to a redemption (the
/// Secret, then the Links). The 2.x counterpart of a cert token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkFile {
    /// The Links, in file order (one per endpoint group of the issuing
    /// site); each names [`Self::secret`] in `tls_credentials`.
    pub links: Vec<Link>,
    /// The Secret holding the certificate the Links connect with.
    pub secret: TlsSecret,
}

impl LinkFile {
    /// Reads a Link file from untrusted bytes, its documents in any order.
    ///
    /// Never panics. Refuses input over
    /// [`MAX_TOKEN_BYTES`](crate::token::MAX_TOKEN_BYTES); a document that is
    /// neither a `skupper.io/v2alpha1` Link nor a `v1` Secret
    /// ([`DecodeError::V2UnexpectedKind`]; a 1.x token gives
    /// [`DecodeError::SkupperV1`]); no Link ([`DecodeError::V2NoLinks`]),
    /// two Links of one name ([`DecodeError::V2DuplicateLink`]); no Secret
    /// ([`DecodeError::V2SecretMissing`]) or several
    /// ([`DecodeError::V2SeveralSecrets`]); a Link without a name,
    /// endpoints, a host or port of each, or `tlsCredentials`
    /// ([`DecodeError::V2MissingField`]); and ports that are not 1-65535,
    /// costs that are not numbers from 0, `tlsCredentials` other than the
    /// Secret's name, and Secret data that is not base64 of X.509
    /// certificates (`ca.crt`, `tls.crt`) and a PEM private key (`tls.key`)
    /// ([`DecodeError::V2BadField`]). Ignores `status`, `creationTimestamp`,
    /// `type` and unknown fields.
    pub fn decode(bytes: &[u8]) -> Result<LinkFile, DecodeError> {
        let documents = raw::documents(bytes)?;
        let mut links: Vec<Link> = Vec::new();
        let mut secrets = Vec::new();
        for (index, doc) in documents.iter().enumerate() {
            let number = index + 1;
            if let Some(kind) = doc.skupper_v1() {
                return Err(DecodeError::SkupperV1 {
                    kind,
                    expected: "a Skupper 2.x Link file",
                });
            }
            if doc.is(LINK_KIND) {
                let link = Link::from_raw(doc, number)?;
                if links.iter().any(|l| l.name == link.name) {
                    return Err(DecodeError::V2DuplicateLink { name: link.name });
                }
                links.push(link);
            } else if doc.is_secret() {
                secrets.push((doc, number));
            } else {
                return Err(doc.unexpected(number, EXPECTED));
            }
        }
        if links.is_empty() {
            return Err(DecodeError::V2NoLinks);
        }
        let (doc, number) = match secrets.as_slice() {
            [] => {
                return Err(DecodeError::V2SecretMissing {
                    tls_credentials: links[0].tls_credentials.clone(),
                })
            }
            [one] => *one,
            several => {
                return Err(DecodeError::V2SeveralSecrets {
                    count: several.len(),
                })
            }
        };
        let secret = TlsSecret::from_raw(doc, number)?;
        for (index, link) in documents
            .iter()
            .enumerate()
            .filter(|(_, d)| d.is(LINK_KIND))
            .map(|(i, _)| i + 1)
            .zip(&links)
        {
            if link.tls_credentials != secret.name {
                return Err(DecodeError::V2BadField {
                    resource: raw::resource(LINK_KIND, Some(&link.name), Some(index)),
                    field: "spec.tlsCredentials".to_owned(),
                    problem: format!(
                        "names the Secret {:?}, but the file's Secret is {:?}",
                        super::shorten(&link.tls_credentials),
                        super::shorten(&secret.name)
                    ),
                });
            }
        }
        Ok(LinkFile { links, secret })
    }

    /// Applies an AccessToken's `spec.linkCost` to the Links a grant server
    /// returned, as a redeeming Skupper site does: a cost over 0 replaces
    /// every Link's `spec.cost`; 0 keeps the costs the server gave.
    pub fn apply_link_cost(&mut self, link_cost: u32) {
        if link_cost > 0 {
            for link in &mut self.links {
                link.cost = link_cost;
            }
        }
    }

    /// Writes the file exactly as `skupper link generate` does: each Link,
    /// then the Secret, each document followed by an empty line, with `---`
    /// between them.
    pub fn encode_generated(&self) -> String {
        let mut out = String::with_capacity(8192);
        for link in &self.links {
            link.write(&mut out, Layout::Generated);
            out.push_str("\n---\n");
        }
        self.secret.write(&mut out, Layout::Generated);
        out.push('\n');
        out
    }

    /// Writes the body of a grant server's answer to a redemption (200),
    /// exactly as Skupper's: `---` before each document, the Secret first,
    /// then each Link, with `creationTimestamp: null` and (on Links)
    /// `status: {}`.
    pub fn encode_grant_response(&self) -> String {
        let mut out = String::with_capacity(8192);
        out.push_str("---\n");
        self.secret.write(&mut out, Layout::GrantResponse);
        for link in &self.links {
            out.push_str("---\n");
            link.write(&mut out, Layout::GrantResponse);
        }
        out
    }
}
