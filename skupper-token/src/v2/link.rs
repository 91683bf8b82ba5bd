//! A Skupper 2.x Link: where to connect (endpoints, one group), with which
//! certificate (the Secret named in `tlsCredentials`), at what cost.

use std::collections::BTreeMap;

use super::raw::{self, Fields, RawDocument};
use super::write::put_number;
use super::{API_VERSION, LINK_KIND};
use crate::token::{put, DecodeError, Endpoint};

/// One endpoint of a [`Link`] (`spec.endpoints[]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LinkEndpoint {
    /// The role: `inter-router` (interior sites connect here) or `edge`;
    /// empty when the file has none (then it is not written either).
    pub name: String,
    /// Host name or IP address.
    pub host: String,
    /// TCP port (a quoted string in the file).
    pub port: u16,
    /// The endpoint group (a router of the issuing site); empty when the
    /// file has none.
    pub group: String,
}

impl LinkEndpoint {
    /// The host and port.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            host: self.host.clone(),
            port: self.port,
        }
    }
}

/// A Skupper 2.x Link (`kind: Link`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The Link's name (`metadata.name`).
    pub name: String,
    /// Where to connect (`spec.endpoints`), at least one.
    pub endpoints: Vec<LinkEndpoint>,
    /// The name of the Secret holding the certificate to connect with
    /// (`spec.tlsCredentials`).
    pub tls_credentials: String,
    /// The link cost (`spec.cost`); 0 when the file has none (then it is
    /// not written either).
    pub cost: u32,
    /// Router settings (`spec.settings`); empty when the file has none.
    pub settings: BTreeMap<String, String>,
}

/// Which of Skupper's two layouts a Link is written in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// `skupper link generate`: no `creationTimestamp`, no `status`.
    Generated,
    /// A grant server's answer: `creationTimestamp: null`, `status: {}`.
    GrantResponse,
}

impl Link {
    /// Reads document number `document` (from 1) of a file, known to be a
    /// `skupper.io/v2alpha1` Link.
    pub(super) fn from_raw(doc: &RawDocument, document: usize) -> Result<Link, DecodeError> {
        let resource = raw::resource(LINK_KIND, doc.name(), Some(document));
        let fields = Fields {
            resource: &resource,
        };
        let name = doc
            .name()
            .ok_or_else(|| fields.missing("metadata.name"))?
            .to_owned();
        let spec = doc.spec.as_ref().ok_or_else(|| fields.missing("spec"))?;
        let raw_endpoints = match spec.endpoints.as_deref() {
            Some(list) if !list.is_empty() => list,
            _ => return Err(fields.missing("spec.endpoints")),
        };
        let mut endpoints = Vec::with_capacity(raw_endpoints.len());
        for (i, endpoint) in raw_endpoints.iter().enumerate() {
            let at = |field: &str| format!("spec.endpoints[{i}].{field}");
            let Some(endpoint) = endpoint else {
                return Err(fields.missing(format!("spec.endpoints[{i}]")));
            };
            let host = fields
                .required(&at("host"), Some(&endpoint.host))?
                .to_owned();
            let port_text = fields.required(&at("port"), Some(&endpoint.port))?;
            let port = fields.port(&at("port"), port_text)?;
            endpoints.push(LinkEndpoint {
                name: endpoint.name.clone().unwrap_or_default(),
                host,
                port,
                group: endpoint.group.clone().unwrap_or_default(),
            });
        }
        let tls_credentials = fields
            .required("spec.tlsCredentials", Some(&spec.tls_credentials))?
            .to_owned();
        let cost = fields.cost("spec.cost", spec.cost.as_deref())?;
        let settings = spec
            .settings
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect();
        Ok(Link {
            name,
            endpoints,
            tls_credentials,
            cost,
            settings,
        })
    }

    /// Writes the Link document in `layout`, keys in alphabetical order,
    /// ports as quoted strings, empty fields left out.
    pub(super) fn write(&self, out: &mut String, layout: Layout) {
        put(out, 0, "apiVersion", API_VERSION);
        put(out, 0, "kind", LINK_KIND);
        out.push_str("metadata:\n");
        if layout == Layout::GrantResponse {
            out.push_str("  creationTimestamp: null\n");
        }
        put(out, 2, "name", &self.name);
        out.push_str("spec:\n");
        if self.cost > 0 {
            put_number(out, 2, "cost", self.cost);
        }
        out.push_str("  endpoints:\n");
        for endpoint in &self.endpoints {
            // The first key of a list item follows its dash.
            let mut item = String::new();
            if !endpoint.group.is_empty() {
                put(&mut item, 4, "group", &endpoint.group);
            }
            put(&mut item, 4, "host", &endpoint.host);
            if !endpoint.name.is_empty() {
                put(&mut item, 4, "name", &endpoint.name);
            }
            put(&mut item, 4, "port", &endpoint.port.to_string());
            out.push_str("  - ");
            out.push_str(&item[4..]);
        }
        if !self.settings.is_empty() {
            out.push_str("  settings:\n");
            for (key, value) in &self.settings {
                put(out, 4, &crate::yaml::scalar(key), value);
            }
        }
        put(out, 2, "tlsCredentials", &self.tls_credentials);
        if layout == Layout::GrantResponse {
            out.push_str("status: {}\n");
        }
    }
}
