//! The etcd store's URL: endpoints, key prefix, TLS files and credentials.
//!
//! ```text
//! etcd://[USER[:PASSWORD]@]HOST[:PORT][,HOST[:PORT]...][/PREFIX]
//! etcds://[USER[:PASSWORD]@]HOST[:PORT][,...][/PREFIX]?ca=FILE[&cert=FILE&key=FILE]
//! ```
//!
//! - `etcd://` speaks plain gRPC (`http://HOST:PORT`), `etcds://` gRPC over
//!   TLS (`https://HOST:PORT`). The port defaults to 2379. Every member
//!   listed is used (requests are balanced, and go on when one is down).
//! - `PREFIX` is where the records live: `/skupper/west` keeps them under
//!   `/skupper/west/<kind>/<name>`. Without one, [`DEFAULT_PREFIX`].
//! - `ca=` is the PEM file of the CA that signed etcd's server certificate
//!   (required with `etcds://`: no system roots are trusted); `cert=` and
//!   `key=` a client certificate and its key, for etcd's
//!   `--client-cert-auth`.
//! - `USER:PASSWORD` authenticates with etcd's user/password
//!   authentication. Both may instead come from the environment
//!   ([`EtcdUrl::with_env_credentials`]: `SKUPPER_TOKEN_ETCD_USER`,
//!   `SKUPPER_TOKEN_ETCD_PASSWORD`), which keeps the password out of
//!   process listings. Percent-encode `@`, `:`, `/` and `%` in them.
//!
//! The password is never displayed: [`EtcdUrl`]'s `Display` and `Debug`
//! show `***` in its place, and so do parse errors.

use std::fmt;
use std::path::PathBuf;

/// The prefix used when the URL has no path.
pub const DEFAULT_PREFIX: &str = "/skupper-token";

/// The port used when an endpoint has none.
pub const DEFAULT_PORT: u16 = 2379;

/// The environment variable naming the etcd user.
pub const USER_ENV: &str = "SKUPPER_TOKEN_ETCD_USER";

/// The environment variable holding the etcd user's password.
pub const PASSWORD_ENV: &str = "SKUPPER_TOKEN_ETCD_PASSWORD";

/// Why an etcd URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdUrlError {
    /// The URL does not start with `etcd://` or `etcds://`.
    #[error("store URL {url:?} is not an etcd URL: it must start with etcd:// or etcds://")]
    Scheme {
        /// The URL given (without any password).
        url: String,
    },
    /// The URL is malformed.
    #[error("store URL {url:?} is invalid: {reason}")]
    Invalid {
        /// The URL given (without any password).
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// A parsed etcd store URL (see the [module documentation](self)).
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdUrl {
    tls: bool,
    hosts: Vec<(String, u16)>,
    prefix: String,
    user: Option<(String, String)>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

impl EtcdUrl {
    /// Parses `url`. Errors never contain the password.
    pub fn parse(url: &str) -> Result<EtcdUrl, EtcdUrlError> {
        let shown = redact(url);
        let invalid = |reason: String| EtcdUrlError::Invalid {
            url: shown.clone(),
            reason,
        };
        let (tls, rest) = if let Some(rest) = url.strip_prefix("etcd://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("etcds://") {
            (true, rest)
        } else {
            return Err(EtcdUrlError::Scheme { url: shown });
        };
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (userinfo, hostlist) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let user = match userinfo {
            None => None,
            Some(info) => {
                let (name, password) = info.split_once(':').unwrap_or((info, ""));
                let name = percent_decode(name).map_err(&invalid)?;
                let password = percent_decode(password).map_err(&invalid)?;
                if name.is_empty() {
                    return Err(invalid("the user name before '@' is empty".into()));
                }
                Some((name, password))
            }
        };
        let mut hosts = Vec::new();
        for host in hostlist.split(',') {
            hosts.push(parse_host(host).map_err(&invalid)?);
        }
        let prefix = path.trim_end_matches('/');
        let prefix = if prefix.is_empty() {
            DEFAULT_PREFIX.to_owned()
        } else {
            percent_decode(prefix).map_err(&invalid)?
        };
        let (mut ca, mut cert, mut key) = (None, None, None);
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).map_err(&invalid)?;
            if value.is_empty() {
                return Err(invalid(format!("{name}= needs a file name")));
            }
            let slot = match name {
                "ca" => &mut ca,
                "cert" => &mut cert,
                "key" => &mut key,
                other => {
                    return Err(invalid(format!(
                        "unknown parameter {other:?} (known: ca, cert, key)"
                    )))
                }
            };
            *slot = Some(PathBuf::from(value));
        }
        if !tls && (ca.is_some() || cert.is_some() || key.is_some()) {
            return Err(invalid("ca=, cert= and key= need TLS: use etcds://".into()));
        }
        if tls && ca.is_none() {
            return Err(invalid(
                "etcds:// needs ca=FILE, the CA that signed etcd's server certificate".into(),
            ));
        }
        if cert.is_some() != key.is_some() {
            return Err(invalid("give cert= and key= together".into()));
        }
        Ok(EtcdUrl {
            tls,
            hosts,
            prefix,
            user,
            ca,
            cert,
            key,
        })
    }

    /// Fills in the user and password from [`USER_ENV`] and
    /// [`PASSWORD_ENV`] when the URL has no user.
    pub fn with_env_credentials(mut self) -> EtcdUrl {
        if self.user.is_none() {
            if let Some(user) = std::env::var(USER_ENV).ok().filter(|u| !u.is_empty()) {
                let password = std::env::var(PASSWORD_ENV).unwrap_or_default();
                self.user = Some((user, password));
            }
        }
        self
    }

    /// The same store with `segment` added to the prefix (the CLI keeps
    /// one site per namespace: `PREFIX/NAMESPACE`).
    pub fn join(mut self, segment: &str) -> EtcdUrl {
        self.prefix = format!("{}/{}", self.prefix, segment.trim_matches('/'));
        self
    }

    /// The gRPC endpoints: `http://HOST:PORT` or `https://HOST:PORT`.
    pub fn endpoints(&self) -> Vec<String> {
        let scheme = if self.tls { "https" } else { "http" };
        self.hosts
            .iter()
            .map(|(host, port)| format!("{scheme}://{host}:{port}"))
            .collect()
    }

    /// The key prefix of the records, without a trailing `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether the store is reached over TLS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The user name, if any (the password is not exposed).
    pub fn user(&self) -> Option<&str> {
        self.user.as_ref().map(|(u, _)| u.as_str())
    }

    /// The user and password, for the connection.
    pub(super) fn credentials(&self) -> Option<&(String, String)> {
        self.user.as_ref()
    }

    /// The CA file (`ca=`).
    pub fn ca(&self) -> Option<&PathBuf> {
        self.ca.as_ref()
    }

    /// The client certificate and key files (`cert=`, `key=`).
    pub fn client_cert(&self) -> Option<(&PathBuf, &PathBuf)> {
        self.cert.as_ref().zip(self.key.as_ref())
    }
}

impl fmt::Display for EtcdUrl {
    /// The URL with the password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.tls { "etcds://" } else { "etcd://" })?;
        if let Some((user, _)) = &self.user {
            write!(f, "{user}:***@")?;
        }
        let hosts: Vec<String> = self.hosts.iter().map(|(h, p)| format!("{h}:{p}")).collect();
        write!(f, "{}{}", hosts.join(","), self.prefix)?;
        let mut sep = '?';
        for (name, value) in [("ca", &self.ca), ("cert", &self.cert), ("key", &self.key)] {
            if let Some(value) = value {
                write!(f, "{sep}{name}={}", value.display())?;
                sep = '&';
            }
        }
        Ok(())
    }
}

impl fmt::Debug for EtcdUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EtcdUrl({self})")
    }
}

/// One `HOST[:PORT]` (an IPv6 address in brackets: `[::1]:2379`).
fn parse_host(host: &str) -> Result<(String, u16), String> {
    if host.is_empty() {
        return Err("an endpoint is empty (give HOST[:PORT], separated by commas)".into());
    }
    let port_of = |port: &str| {
        port.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("endpoint {host:?} has an invalid port {port:?}"))
    };
    let (name, port) = match host.find(']') {
        Some(end) if host.starts_with('[') => match &host[end + 1..] {
            "" => (&host[..=end], None),
            rest => match rest.strip_prefix(':') {
                Some(port) => (&host[..=end], Some(port_of(port)?)),
                None => return Err(format!("endpoint {host:?} is malformed")),
            },
        },
        _ => match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port_of(port)?)),
            None => (host, None),
        },
    };
    let allowed =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'[' | b']' | b':');
    if name.is_empty() || !name.bytes().all(allowed) {
        return Err(format!(
            "endpoint {host:?} is not a host name or IP address"
        ));
    }
    Ok((name.to_owned(), port.unwrap_or(DEFAULT_PORT)))
}

/// `url` with any password in its user information replaced by `***`.
fn redact(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let end = url[start..]
        .find(['/', '?'])
        .map_or(url.len(), |i| start + i);
    match url[start..end].rsplit_once('@') {
        Some((info, hosts)) => {
            let user = info.split_once(':').map_or(info, |(u, _)| u);
            format!("{}{user}:***@{hosts}{}", &url[..start], &url[end..])
        }
        None => url.to_owned(),
    }
}

/// Decodes `%XX` escapes.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape at byte {i}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "a percent escape decodes to invalid UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_prefix_and_defaults() {
        let u = EtcdUrl::parse("etcd://127.0.0.1:2379,127.0.0.1:22379/skupper/west/").unwrap();
        assert_eq!(
            u.endpoints(),
            ["http://127.0.0.1:2379", "http://127.0.0.1:22379"]
        );
        assert_eq!(u.prefix(), "/skupper/west");
        let u = EtcdUrl::parse("etcd://etcd.example,[::1],[::1]:3").unwrap();
        assert_eq!(
            u.endpoints(),
            [
                "http://etcd.example:2379",
                "http://[::1]:2379",
                "http://[::1]:3"
            ]
        );
        assert_eq!(u.prefix(), DEFAULT_PREFIX);
        assert_eq!(u.join("west").prefix(), "/skupper-token/west");
    }

    #[test]
    fn tls_files_and_credentials() {
        let u = EtcdUrl::parse(
            "etcds://admin:s%40cret@h1:1,h2:2/p?ca=/etc/ca.pem&cert=/c.pem&key=/k.pem",
        )
        .unwrap();
        assert!(u.tls());
        assert_eq!(u.endpoints(), ["https://h1:1", "https://h2:2"]);
        assert_eq!(
            u.credentials(),
            Some(&("admin".to_owned(), "s@cret".to_owned()))
        );
        assert_eq!(u.ca(), Some(&PathBuf::from("/etc/ca.pem")));
        assert_eq!(
            u.client_cert(),
            Some((&PathBuf::from("/c.pem"), &PathBuf::from("/k.pem")))
        );
        let shown = format!("{u} {u:?}");
        assert!(!shown.contains("cret"), "{shown}");
        assert_eq!(
            u.to_string(),
            "etcds://admin:***@h1:1,h2:2/p?ca=/etc/ca.pem&cert=/c.pem&key=/k.pem"
        );
    }

    #[test]
    fn refusals_never_show_the_password() {
        for (url, want) in [
            ("http://h:1", "must start with etcd://"),
            ("etcd://u:hunter2@h:0", "invalid port"),
            ("etcd://u:hunter2@h:1,/p", "an endpoint is empty"),
            ("etcd://h:1?ca=x", "need TLS"),
            ("etcds://u:hunter2@h:1", "needs ca=FILE"),
            ("etcds://h:1?ca=a&cert=b", "together"),
            ("etcd://h:1?tls=1", "unknown parameter"),
            ("etcd://h%zz:1", "not a host name"),
            ("etcd://[::1]x", "malformed"),
        ] {
            let e = EtcdUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(want), "{url}: {e}");
            assert!(!e.contains("hunter2"), "{url}: {e}");
        }
    }
}
