//! Skupper version rules.
//!
//! Sites tell each other their Skupper version: a token carries the issuing
//! site's version (`skupper.io/site-version`) and a claim redemption carries
//! the linking site's version (`?site-version=`). Versions are
//! `major.minor.patch` with an optional leading `v` and any suffix
//! (`1.9.6`, `v1.4.2-rc1`). Skupper refuses a remote site only when it is
//! older than both the local site and [`MINIMUM_VERSION`]; an empty version
//! is refused and a version it cannot read (such as `undefined`, from a
//! development build) is accepted.
//!
//! ```
//! use skupper_token::version::check_remote_version;
//!
//! assert!(check_remote_version("1.5.2", "1.9.6").is_ok());
//! assert!(check_remote_version("undefined", "1.9.6").is_ok());
//! let err = check_remote_version("0.7.0", "1.9.6").unwrap_err();
//! assert!(err.to_string().starts_with("minimum version required 0.8.0"));
//! ```

use std::fmt;

/// The oldest remote Skupper version a site accepts (when it is also older
/// than the local site).
pub const MINIMUM_VERSION: &str = "0.8.0";

/// The Skupper version this crate speaks as: written to tokens'
/// `skupper.io/site-version` by default and sent when redeeming claims.
pub const VERSION: &str = "1.9.6";

/// Skupper's exact text for a refused version, as the claims endpoint
/// answers it (status 400). [`VersionError`] messages start with it.
pub const MINIMUM_VERSION_MESSAGE: &str = "minimum version required 0.8.0";

/// A version refused by [`check_remote_version`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// The remote site sent no version at all.
    #[error("minimum version required 0.8.0 (the remote site gave no version; it may be older than 0.8.0: upgrade it)")]
    Empty,
    /// The remote site is older than both this site and the minimum.
    #[error("minimum version required 0.8.0 (the remote site runs {remote}: upgrade it to 0.8.0 or later)")]
    TooOld {
        /// The version the remote site gave.
        remote: String,
    },
}

/// A parsed Skupper version: `major.minor.patch`, with the optional leading
/// `v` and any suffix (`-rc1`) dropped. Ordered by `(major, minor, patch)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major version number.
    pub major: u64,
    /// Minor version number.
    pub minor: u64,
    /// Patch version number.
    pub patch: u64,
}

impl Version {
    /// Reads `major.minor.patch` with an optional leading `v` and any suffix
    /// after the patch number (`1.9.6`, `v1.4.2-rc1`, `0.8.0+abc`).
    /// Returns `None` for anything else (`undefined`, `1.5`, an empty string).
    pub fn parse(text: &str) -> Option<Version> {
        let s = text.strip_prefix('v').unwrap_or(text);
        let (major, s) = leading_number(s)?;
        let s = s.strip_prefix('.')?;
        let (minor, s) = leading_number(s)?;
        let s = s.strip_prefix('.')?;
        let (patch, _suffix) = leading_number(s)?;
        Some(Version {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Reads one or more ASCII digits at the start of `s`.
fn leading_number(s: &str) -> Option<(u64, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    let n = s[..end].parse().ok()?;
    Some((n, &s[end..]))
}

/// Checks a remote site's version as Skupper does.
///
/// - an empty `remote` is refused ([`VersionError::Empty`]);
/// - a `remote` that cannot be read (such as `undefined`) is accepted;
/// - otherwise `remote` is refused only when it is older than `local` AND
///   older than [`MINIMUM_VERSION`] ([`VersionError::TooOld`]).
///
/// When `local` cannot be read, `remote` is not considered older than it
/// (as in Skupper), so it is accepted.
pub fn check_remote_version(remote: &str, local: &str) -> Result<(), VersionError> {
    if remote.is_empty() {
        return Err(VersionError::Empty);
    }
    let Some(remote_version) = Version::parse(remote) else {
        return Ok(());
    };
    let older_than_local = Version::parse(local).is_some_and(|l| remote_version < l);
    let minimum = Version {
        major: 0,
        minor: 8,
        patch: 0,
    };
    if older_than_local && remote_version < minimum {
        return Err(VersionError::TooOld {
            remote: remote.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_matches_constant() {
        assert_eq!(
            Version::parse(MINIMUM_VERSION).unwrap().to_string(),
            "0.8.0"
        );
        assert!(Version::parse(VERSION).is_some());
        assert!(MINIMUM_VERSION_MESSAGE.ends_with(MINIMUM_VERSION));
    }

    #[test]
    fn parses_versions() {
        let v = |s| Version::parse(s);
        let mk = |major, minor, patch| {
            Some(Version {
                major,
                minor,
                patch,
            })
        };
        assert_eq!(v("1.9.6"), mk(1, 9, 6));
        assert_eq!(v("v1.4.2-rc1"), mk(1, 4, 2));
        assert_eq!(v("0.8.0"), mk(0, 8, 0));
        assert_eq!(v("10.20.30abc"), mk(10, 20, 30));
        assert_eq!(v("1.10.0"), mk(1, 10, 0));
        assert_eq!(v("undefined"), None);
        assert_eq!(v(""), None);
        assert_eq!(v("1.5"), None);
        assert_eq!(v("v"), None);
        assert_eq!(v("1..2"), None);
        assert_eq!(v(".1.2.3"), None);
        assert_eq!(v("-1.2.3"), None);
        assert_eq!(v("vv1.2.3"), None);
        assert_eq!(v("99999999999999999999999.0.0"), None);
        assert!(v("1.10.0") > v("1.9.6"));
    }

    #[test]
    fn skupper_matrix() {
        let local = "1.9.6";
        assert_eq!(check_remote_version("", local), Err(VersionError::Empty));
        assert_eq!(check_remote_version("undefined", local), Ok(()));
        assert_eq!(
            check_remote_version("0.7.0", local),
            Err(VersionError::TooOld {
                remote: "0.7.0".into()
            })
        );
        assert_eq!(check_remote_version("0.7.0", "0.6.0"), Ok(()));
        assert_eq!(check_remote_version("0.7.0", "0.7.0"), Ok(()));
        assert_eq!(check_remote_version("v1.4.2-rc1", local), Ok(()));
        assert_eq!(check_remote_version("0.8.0", local), Ok(()));
        assert!(check_remote_version("0.7.9-rc1", local).is_err());
        assert_eq!(check_remote_version("1.9.6", local), Ok(()));
        assert_eq!(check_remote_version("2.0.0", local), Ok(()));
        // Local version unreadable: remote not older than it.
        assert_eq!(check_remote_version("0.7.0", "undefined"), Ok(()));
        // Empty is refused whatever the local version.
        assert_eq!(check_remote_version("", "0.1.0"), Err(VersionError::Empty));
    }

    #[test]
    fn messages_start_with_skupper_text() {
        let e = check_remote_version("0.7.0", "1.9.6").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(MINIMUM_VERSION_MESSAGE), "{msg}");
        assert!(msg.contains("0.7.0"), "{msg}");
        let msg = VersionError::Empty.to_string();
        assert!(msg.starts_with(MINIMUM_VERSION_MESSAGE), "{msg}");
    }
}
