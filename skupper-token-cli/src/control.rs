//! The control socket: how CLI commands ask a running `serve` for live
//! state.
//!
//! `serve` listens on a Unix socket in the site's directory (which is
//! owner-only, mode 0700; the socket itself is made 0600), on its tokio
//! runtime ([`ControlServer`]). A client sends one JSON [`Request`] line
//! and reads one JSON [`Response`] line ([`ask`], a short blocking call for
//! the commands). When no `serve` runs, connecting fails and commands say
//! the site is not running.

use std::future::Future;
use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};

/// The socket's file name in the site directory.
pub const SOCKET_NAME: &str = "control.sock";

/// Longest request or response line accepted.
pub const MAX_LINE: usize = 1 << 20;

/// A question for the running site.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// The live state of every link.
    Live,
    /// Send a ping over outgoing link `link` and wait for the answer.
    PingLink {
        /// The link name.
        link: String,
        /// How long to wait, in milliseconds.
        timeout_ms: u64,
    },
    /// Send a ping over the incoming link from `site` (id or name).
    PingSite {
        /// The remote site's id or name.
        site: String,
        /// How long to wait, in milliseconds.
        timeout_ms: u64,
    },
    /// Re-read the site's records now (after a change by another command).
    Reload,
}

/// The running site's answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Response {
    /// The live state.
    Live(LiveState),
    /// A ping's round trip, in microseconds.
    Pong {
        /// Round-trip time in microseconds.
        rtt_us: u64,
        /// The link it went over.
        #[serde(default)]
        over: Option<crate::links::PingPath>,
    },
    /// Done.
    Ok,
    /// The request failed.
    Error {
        /// Why.
        message: String,
    },
}

/// The live state of a running site's links.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LiveState {
    /// The serving process.
    pub pid: u32,
    /// Links this site dials.
    pub outgoing: Vec<LiveLink>,
    /// Links other sites dialed to this one.
    pub incoming: Vec<LiveIncoming>,
}

/// One outgoing link as the running site sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LiveLink {
    /// The link name.
    pub name: String,
    /// The remote site's id.
    pub remote_site_id: String,
    /// The remote site's name, from its answer to this link's hello: known
    /// once the link has connected while this `serve` runs.
    #[serde(default)]
    pub remote_site_name: Option<String>,
    /// Where it dials.
    pub target: String,
    /// Whether it is up.
    pub connected: bool,
    /// Since when it is up (RFC 3339).
    #[serde(default)]
    pub since: Option<String>,
    /// Why it is not up.
    #[serde(default)]
    pub reason: Option<String>,
    /// The remote site revoked this link's access (a signed revocation
    /// notice): it will not connect with its credentials again.
    #[serde(default)]
    pub revoked: bool,
}

/// One incoming link as the running site sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LiveIncoming {
    /// The remote site's id.
    pub site_id: String,
    /// The remote site's name.
    pub site_name: String,
    /// The remote link's name.
    pub link: String,
    /// Since when (RFC 3339).
    pub since: String,
    /// The common name of the certificate it authenticated with.
    pub common_name: String,
}

impl LiveState {
    /// Distinct remote sites with a live link in either direction.
    pub fn linked_sites(&self) -> usize {
        let mut ids: Vec<&str> = self
            .outgoing
            .iter()
            .filter(|l| l.connected)
            .map(|l| l.remote_site_id.as_str())
            .chain(self.incoming.iter().map(|i| i.site_id.as_str()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }
}

/// The socket path of the site in `site_dir`.
pub fn socket_path(site_dir: &Path) -> PathBuf {
    site_dir.join(SOCKET_NAME)
}

/// Asks the site running in `site_dir`. `Ok(None)`: no site is running
/// there (no socket, or nobody listening).
pub fn ask(site_dir: &Path, request: &Request, timeout: Duration) -> io::Result<Option<Response>> {
    let path = socket_path(site_dir);
    let mut stream = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut line = serde_json::to_vec(request).map_err(io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(stream.take(MAX_LINE as u64)).read_line(&mut answer)?;
    if answer.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the running site closed the control socket without answering",
        ));
    }
    serde_json::from_str(&answer)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad answer: {e}")))
}

/// A running control socket, served by a task on a tokio runtime; removed
/// when stopped.
pub struct ControlServer {
    path: PathBuf,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ControlServer {
    /// Listens on the control socket of `site_dir`, on the tokio runtime of
    /// `handle`, answering each request with `handler` (one task per
    /// connection). A stale socket left by a process that died is replaced;
    /// a live one (another `serve`) is an error.
    pub fn start<F>(
        handle: &tokio::runtime::Handle,
        site_dir: &Path,
        handler: impl Fn(Request) -> F + Send + Sync + 'static,
    ) -> io::Result<ControlServer>
    where
        F: Future<Output = Response> + Send + 'static,
    {
        let path = socket_path(site_dir);
        if UnixStream::connect(&path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "another 'serve' is already running for this site (it answers on {})",
                    path.display()
                ),
            ));
        }
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        let listener = {
            let _in_runtime = handle.enter();
            tokio::net::UnixListener::from_std(listener)?
        };
        let handler = Arc::new(handler);
        let task = handle.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let handler = handler.clone();
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(
                                CONNECTION_TIMEOUT,
                                serve_one(stream, &*handler),
                            )
                            .await;
                        });
                    }
                    // Out of file descriptors, say: try again shortly.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        });
        Ok(ControlServer {
            path,
            task: Some(task),
        })
    }

    /// Stops listening and removes the socket (requests being answered
    /// finish on their own).
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// How long one control connection may take, request to answer.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

async fn serve_one<F>(stream: tokio::net::UnixStream, handler: &(impl Fn(Request) -> F + Sync))
where
    F: Future<Output = Response>,
{
    let (reader, mut writer) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(reader.take(MAX_LINE as u64));
    if reader.read_line(&mut line).await.is_err() {
        return;
    }
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(request) => handler(request).await,
        Err(e) => Response::Error {
            message: format!("not a control request: {e}"),
        },
    };
    if let Ok(mut out) = serde_json::to_vec(&response) {
        out.push(b'\n');
        let _ = writer.write_all(&out).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_and_answers_and_reports_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(ask(dir.path(), &Request::Live, t).unwrap(), None);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = ControlServer::start(rt.handle(), dir.path(), |req| async move {
            match req {
                Request::Live => Response::Live(LiveState {
                    pid: 7,
                    ..LiveState::default()
                }),
                Request::PingLink { link, .. } => Response::Error {
                    message: format!("no link {link}"),
                },
                _ => Response::Ok,
            }
        })
        .unwrap();
        let mode = std::fs::metadata(socket_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            ControlServer::start(rt.handle(), dir.path(), |_| async { Response::Ok }).is_err(),
            "one serve per site"
        );
        match ask(dir.path(), &Request::Live, t).unwrap() {
            Some(Response::Live(live)) => assert_eq!(live.pid, 7),
            other => panic!("{other:?}"),
        }
        let ping = Request::PingLink {
            link: "link9".into(),
            timeout_ms: 10,
        };
        assert_eq!(
            ask(dir.path(), &ping, t).unwrap(),
            Some(Response::Error {
                message: "no link link9".into()
            })
        );
        server.shutdown();
        assert_eq!(ask(dir.path(), &Request::Live, t).unwrap(), None);
        assert!(!socket_path(dir.path()).exists());
    }

    #[test]
    fn counts_distinct_linked_sites() {
        let out = |id: &str, connected| LiveLink {
            name: "l".into(),
            remote_site_id: id.into(),
            remote_site_name: None,
            target: "t".into(),
            connected,
            since: None,
            reason: None,
            revoked: false,
        };
        let inc = |id: &str| LiveIncoming {
            site_id: id.into(),
            site_name: "n".into(),
            link: "link1".into(),
            since: "x".into(),
            common_name: id.into(),
        };
        let live = LiveState {
            pid: 1,
            outgoing: vec![out("a", true), out("b", false), out("c", true)],
            incoming: vec![inc("a"), inc("d")],
        };
        assert_eq!(live.linked_sites(), 3);
    }
}
