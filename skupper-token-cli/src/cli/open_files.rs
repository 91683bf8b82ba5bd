//! `serve`'s open-file limit: every link is a socket, so the usual soft
//! limit of 1,024 open files would stop a site at about a thousand links.
//! `serve` raises its soft limit to the hard one when it starts (an
//! unprivileged process may), and says so in its log when it cannot.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// What became of the open-file limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OpenFiles {
    /// The soft limit is the hard limit (it was, or was raised to it).
    AtHardLimit,
    /// The soft limit could not be raised: the log line.
    NotRaised(String),
}

/// Raises this process's soft limit on open files to its hard limit.
pub(crate) fn raise_to_hard_limit() -> OpenFiles {
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return OpenFiles::AtHardLimit;
    }
    let show = |l: Option<u64>| l.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => OpenFiles::AtHardLimit,
        Err(e) => OpenFiles::NotRaised(format!(
            "cannot raise the open-file limit from {} to {} ({e}): this site can hold at most about that many links and connections at once; raise it with 'ulimit -n' before 'serve'",
            show(limit.current),
            show(limit.maximum)
        )),
    }
}
