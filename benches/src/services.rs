//! The services the load tool runs a site on besides `skupper-token`
//! itself: a one-member etcd whose data directory is on the disk under
//! test (its write-ahead log's fsyncs are real), and haproxy in TCP mode
//! in front of several `serve` replicas. Each is a child process stopped
//! (SIGTERM, then SIGKILL) when its handle is dropped.
//!
//! etcd's own counters (`/metrics` on its client port: write-ahead-log
//! fsyncs, backend commits, gRPC requests by method) are read with curl,
//! so a run can say what one redemption costs on the etcd side.
// A load tool's helpers start processes and read the clock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process, stopped when dropped.
#[derive(Debug)]
pub struct Service {
    what: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Service {
    /// Starts `command`, its output going to `log`.
    pub fn spawn(what: &str, mut command: Command, log: &Path) -> Result<Service, String> {
        let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {what}: {e}"))?;
        Ok(Service {
            what: what.to_owned(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Fails with the log's end if the process has exited.
    pub fn check_running(&mut self) -> Result<(), String> {
        let exited = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        match exited {
            None => Ok(()),
            Some(status) => Err(format!(
                "{} exited ({status}): {}",
                self.what,
                tail(&self.log)
            )),
        }
    }

    /// Waits until `ready` holds, for at most `timeout`.
    pub fn wait_until(
        &mut self,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            if ready() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} not ready within {} s: {}",
                    self.what,
                    timeout.as_secs(),
                    tail(&self.log)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            stop_child(child);
        }
    }
}

/// Stops `child`: SIGTERM, then SIGKILL if it is still running after 5 s;
/// waits for it either way. Returns whether it had to be killed.
pub fn stop_child(mut child: Child) -> bool {
    let mut killed = false;
    if let Ok(None) = child.try_wait() {
        if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        killed = true;
        let _ = child.kill();
    }
    let _ = child.wait();
    killed
}

/// The last lines of a log, for an error.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" / ")
}

/// A free port on 127.0.0.1 (bound and released).
pub fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// A one-member etcd on loopback, its data in a directory of its own.
#[derive(Debug)]
pub struct Etcd {
    service: Service,
    /// Its client address.
    pub client: SocketAddr,
}

impl Etcd {
    /// Starts `etcd` with its data under `dir` (the directory is made).
    pub fn start(dir: &Path) -> Result<Etcd, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (client, peer) = (free_port()?, free_port()?);
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut command = Command::new("etcd");
        // ETCD_* variables act as flags: start etcd without them.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ETCD_") {
                command.env_remove(name);
            }
        }
        command
            .args(["--name", "bench", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("bench={peer_url}")]);
        let mut service = Service::spawn("etcd", command, &dir.join("etcd.log"))
            .map_err(|e| format!("{e} (Debian: apt-get install etcd-server)"))?;
        let client = SocketAddr::from(([127, 0, 0, 1], client));
        service.wait_until(Duration::from_secs(20), || {
            accepts(client) && metrics_text(client).is_ok()
        })?;
        Ok(Etcd { service, client })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.service.pid()
    }

    /// A store URL for a site kept under `prefix` in this etcd.
    pub fn store_url(&self, prefix: &str) -> String {
        format!("etcd://{}/{}", self.client, prefix.trim_start_matches('/'))
    }

    /// Its counters now.
    pub fn metrics(&self) -> Result<EtcdMetrics, String> {
        Ok(EtcdMetrics::parse(&metrics_text(self.client)?))
    }
}

fn metrics_text(client: SocketAddr) -> Result<String, String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .arg(format!("http://{client}/metrics"))
        .output()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "curl http://{client}/metrics: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// etcd's counters that say what writes cost it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EtcdMetrics {
    /// Write-ahead-log fsyncs.
    pub wal_fsyncs: f64,
    /// Backend (bbolt) commits.
    pub backend_commits: f64,
    /// gRPC requests handled, by method (`Range`, `Txn`, ...), every
    /// status code together.
    pub requests: BTreeMap<String, f64>,
}

impl EtcdMetrics {
    /// Reads the Prometheus text etcd serves.
    pub fn parse(text: &str) -> EtcdMetrics {
        let mut m = EtcdMetrics::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            if name == "etcd_disk_wal_fsync_duration_seconds_count" {
                m.wal_fsyncs = value;
            } else if name == "etcd_disk_backend_commit_duration_seconds_count" {
                m.backend_commits = value;
            } else if let Some(labels) = name.strip_prefix("grpc_server_handled_total{") {
                let method = labels
                    .split(',')
                    .find_map(|l| l.strip_prefix("grpc_method=\""))
                    .map(|m| m.trim_end_matches(['"', '}']));
                if let Some(method) = method {
                    *m.requests.entry(method.to_owned()).or_default() += value;
                }
            }
        }
        m
    }

    /// What happened between `before` and `self`.
    pub fn since(&self, before: &EtcdMetrics) -> EtcdMetrics {
        EtcdMetrics {
            wal_fsyncs: self.wal_fsyncs - before.wal_fsyncs,
            backend_commits: self.backend_commits - before.backend_commits,
            requests: self
                .requests
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v - before.requests.get(k).copied().unwrap_or(0.0),
                    )
                })
                .filter(|(_, v)| *v > 0.0)
                .collect(),
        }
    }

    /// Every gRPC request counted.
    pub fn total_requests(&self) -> f64 {
        self.requests.values().sum()
    }

    /// The requests by method, each divided by `per` (`Range 3.0, Txn
    /// 2.0`).
    pub fn requests_per(&self, per: f64) -> String {
        let mut s = String::new();
        for (method, n) in &self.requests {
            let _ = write!(
                s,
                "{}{method} {:.2}",
                if s.is_empty() { "" } else { ", " },
                n / per
            );
        }
        s
    }
}

/// haproxy in TCP mode: one front address, round robin over `backends`.
#[derive(Debug)]
pub struct Haproxy {
    service: Service,
}

impl Haproxy {
    /// Starts haproxy on `front`, its configuration and log in `dir`.
    pub fn start(
        dir: &Path,
        front: SocketAddr,
        backends: &[SocketAddr],
    ) -> Result<Haproxy, String> {
        let mut config = format!(
            "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 1m\n    timeout server 1m\n\
             frontend claims\n    bind {front}\n    default_backend replicas\n\
             backend replicas\n    balance roundrobin\n"
        );
        for (i, b) in backends.iter().enumerate() {
            let _ = writeln!(
                config,
                "    server r{i} {b} check inter 500ms fall 2 rise 1"
            );
        }
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut command = Command::new("haproxy");
        command.arg("-db").arg("-f").arg(&path);
        let mut service = Service::spawn("haproxy", command, &dir.join("haproxy.log"))
            .map_err(|e| format!("{e} (Debian: apt-get install haproxy)"))?;
        service.wait_until(Duration::from_secs(10), || accepts(front))?;
        Ok(Haproxy { service })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.service.pid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_metrics_are_read_from_prometheus_text() {
        let text = "# HELP x\n\
            etcd_disk_wal_fsync_duration_seconds_count 5\n\
            etcd_disk_backend_commit_duration_seconds_count 6\n\
            grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Txn\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 7\n\
            grpc_server_handled_total{grpc_code=\"Aborted\",grpc_method=\"Txn\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 1\n\
            grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 2\n";
        let m = EtcdMetrics::parse(text);
        assert_eq!(m.wal_fsyncs, 5.0);
        assert_eq!(m.backend_commits, 6.0);
        assert_eq!(m.requests["Txn"], 8.0);
        assert_eq!(m.requests["Range"], 2.0);
        let before = EtcdMetrics::parse("etcd_disk_wal_fsync_duration_seconds_count 1\n");
        let d = m.since(&before);
        assert_eq!(d.wal_fsyncs, 4.0);
        assert_eq!(d.total_requests(), 10.0);
        assert_eq!(d.requests_per(2.0), "Range 1.00, Txn 4.00");
    }
}
