//! The site's one-line status: how many other sites it is linked to.

use std::collections::BTreeSet;
use std::fmt;

use time::OffsetDateTime;

use super::{LoadError, Site};
use crate::records::SiteMode;
use crate::store::Store;

/// The site's one-line status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteStatus {
    /// The namespace.
    pub namespace: String,
    /// The mode.
    pub mode: SiteMode,
    /// Distinct remote sites with a live link in either direction.
    pub linked_sites: usize,
}

impl fmt::Display for SiteStatus {
    /// `Skupper is enabled for namespace "west" in interior mode. It is
    /// linked to 2 other sites.`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Skupper is enabled for namespace \"{}\" in {} mode. ",
            self.namespace, self.mode
        )?;
        match self.linked_sites {
            0 => f.write_str("It is not linked to any other sites."),
            1 => f.write_str("It is linked to 1 other site."),
            n => write!(f, "It is linked to {n} other sites."),
        }
    }
}

impl<S: Store> Site<S> {
    /// `Skupper is enabled for namespace "west" in interior mode. It is
    /// linked to 2 other sites.`: counts distinct remote sites with a live
    /// link in either direction at `now`: outgoing links whose record says
    /// connected, and incoming links whose record is live
    /// ([`Site::incoming_links`]).
    pub fn status(&self, now: OffsetDateTime) -> Result<SiteStatus, LoadError> {
        let loaded = self.loaded()?;
        // A link whose record cannot be read counts as not connected; see
        // `links_listing` to report it.
        let mut remote: BTreeSet<String> = self
            .links_listing()?
            .records
            .into_iter()
            .filter(|l| l.state().is_connected())
            .map(|l| l.remote_site_id)
            .collect();
        remote.extend(
            self.incoming_links(now)?
                .into_iter()
                .map(|l| l.peer_site_id),
        );
        remote.remove(&loaded.record.id);
        Ok(SiteStatus {
            namespace: loaded.record.namespace.clone(),
            mode: loaded.record.mode,
            linked_sites: remote.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_sentences() {
        let s = |n, mode| {
            SiteStatus {
                namespace: "west".into(),
                mode,
                linked_sites: n,
            }
            .to_string()
        };
        assert_eq!(s(2, SiteMode::Interior), "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 2 other sites.");
        assert_eq!(s(1, SiteMode::Interior), "Skupper is enabled for namespace \"west\" in interior mode. It is linked to 1 other site.");
        assert_eq!(s(0, SiteMode::Edge), "Skupper is enabled for namespace \"west\" in edge mode. It is not linked to any other sites.");
    }
}
