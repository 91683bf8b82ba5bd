//! A real one-member etcd for tests: free loopback ports, a temporary data
//! directory, no `ETCD_*` variables from the environment, started and
//! waited for until healthy, killed (and its data deleted) on drop.
//!
//! When `etcd` is not installed the test fails, saying what to install:
//! these tests never skip.

// Each test file uses some of these.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long etcd may take to become healthy.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running (or stopped) etcd member.
pub struct Etcd {
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
    starts: u32,
    tls: bool,
}

/// The files of a TLS etcd: its CA, and a client certificate it trusts.
pub struct TlsFiles {
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Etcd {
    /// Starts a one-member etcd and waits until it is healthy.
    pub fn start() -> Etcd {
        Etcd::start_with(false)
    }

    /// Starts a one-member etcd serving clients over TLS only, requiring a
    /// client certificate (`--client-cert-auth`), with a CA and
    /// certificates made by `openssl` in its directory.
    pub fn start_tls() -> Etcd {
        Etcd::start_with(true)
    }

    fn start_with(tls: bool) -> Etcd {
        let dir = tempfile::Builder::new()
            .prefix("skupper-token-etcd-")
            .tempdir()
            .expect("temp dir for etcd");
        let mut etcd = Etcd {
            dir,
            client_port: free_port(),
            peer_port: free_port(),
            child: None,
            starts: 0,
            tls,
        };
        if tls {
            etcd.make_certificates();
        }
        etcd.resume();
        etcd
    }

    /// The TLS files (for an etcd from [`Etcd::start_tls`]).
    pub fn tls_files(&self) -> TlsFiles {
        let d = self.dir.path();
        TlsFiles {
            ca: d.join("ca.pem"),
            client_cert: d.join("client.pem"),
            client_key: d.join("client.key"),
        }
    }

    /// A CA, a server certificate for 127.0.0.1 and a client certificate.
    fn make_certificates(&self) {
        let d = self.dir.path();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .current_dir(d)
                .args(args)
                .output()
                .expect("openssl (Debian: apt-get install openssl)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=etcd test CA",
                ],
            ]
            .concat(),
        );
        for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
            std::fs::write(
                d.join(format!("{name}.ext")),
                format!("subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n"),
            )
            .unwrap();
            let (key, csr, pem, ext) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
                format!("{name}.ext"),
            );
            openssl(
                &[
                    &["req"][..],
                    &ec,
                    &[
                        "-keyout",
                        &key,
                        "-out",
                        &csr,
                        "-subj",
                        &format!("/CN={name}"),
                    ],
                ]
                .concat(),
            );
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ]);
        }
    }

    /// The client URL, `http(s)://127.0.0.1:PORT`.
    pub fn client_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// `127.0.0.1:PORT`, for an `etcd://` store URL.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// An `etcd://` store URL with this member and `prefix`.
    pub fn store_url(&self, prefix: &str) -> String {
        format!("etcd://{}{prefix}", self.endpoint())
    }

    /// Stops etcd (SIGKILL) and waits for it to exit. Its data stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data, and waits until it is
    /// healthy.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "etcd is already running");
        self.starts += 1;
        let data = self.dir.path().join("data");
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let tls = self.tls.then(|| self.dir.path().to_owned());
        let child = spawn_member(&Member {
            name: "m1",
            data: &data,
            client_port: self.client_port,
            peer_port: self.peer_port,
            initial_cluster: &format!("m1={peer}"),
            log: &self.log_path(),
            tls: tls.as_deref(),
        });
        self.child = Some(child);
        self.wait_healthy();
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// What etcd wrote, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("etcd exited ({status}) while starting:\n{}", self.log());
            }
            if self.healthy() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "etcd did not become healthy within {START_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn healthy(&self) -> bool {
        if !self.tls {
            return health(self.client_port);
        }
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(self.ctl_args())
            .args(["endpoint", "health"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `etcdctl`'s options for this member.
    fn ctl_args(&self) -> Vec<String> {
        let mut args = vec!["--endpoints".to_owned(), self.client_url()];
        if self.tls {
            let f = self.tls_files();
            for (flag, path) in [
                ("--cacert", f.ca),
                ("--cert", f.client_cert),
                ("--key", f.client_key),
            ] {
                args.push(flag.to_owned());
                args.push(path.display().to_string());
            }
        }
        args
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `etcdctl` (API v3) against this member; returns its standard
    /// output.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(self.ctl_args())
            .args(args)
            .output()
            .expect("etcdctl (Debian: apt-get install etcd-client)");
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
        // The temporary directory (with etcd's preallocated WAL) is removed
        // when `dir` drops.
    }
}

/// How to start one etcd member.
pub struct Member<'a> {
    /// Its `--name`.
    pub name: &'a str,
    /// Its `--data-dir`.
    pub data: &'a Path,
    /// Its client port on 127.0.0.1.
    pub client_port: u16,
    /// Its peer port on 127.0.0.1.
    pub peer_port: u16,
    /// `--initial-cluster`: `NAME=http://127.0.0.1:PEER,...`.
    pub initial_cluster: &'a str,
    /// Where its output goes (appended).
    pub log: &'a Path,
    /// Serve clients over TLS only, requiring a client certificate, with
    /// `server.pem`, `server.key` and `ca.pem` from this directory.
    pub tls: Option<&'a Path>,
}

/// Starts an etcd member, without any `ETCD_*` variable of the
/// environment (each would act as a flag), its output appended to its log.
/// Panics, saying what to install, when etcd is not installed.
pub fn spawn_member(member: &Member<'_>) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(member.log)
        .expect("etcd log file");
    let scheme = if member.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let client = format!("{scheme}://127.0.0.1:{}", member.client_port);
    let peer = format!("http://127.0.0.1:{}", member.peer_port);
    let mut cmd = Command::new("etcd");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ETCD") {
            cmd.env_remove(name);
        }
    }
    cmd.args(["--name", member.name, "--data-dir"])
        .arg(member.data)
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", member.initial_cluster])
        .args(["--initial-cluster-state", "new"])
        .args(["--log-level", "warn"]);
    if let Some(d) = member.tls {
        cmd.arg("--cert-file")
            .arg(d.join("server.pem"))
            .arg("--key-file")
            .arg(d.join("server.key"))
            .arg("--trusted-ca-file")
            .arg(d.join("ca.pem"))
            .arg("--client-cert-auth");
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().expect("etcd log"))
        .stderr(log);
    match cmd.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "etcd is not installed: these tests run a real etcd; install it (Debian: apt-get install etcd-server etcd-client) and run them again"
        ),
        Err(e) => panic!("cannot start etcd: {e}"),
    }
}

/// Waits until every member on `client_ports` answers `/health` as healthy
/// (which needs a leader), panicking with the logs when one of `children`
/// exits or after [`START_TIMEOUT`].
pub fn wait_healthy(children: &mut [&mut Child], client_ports: &[u16], logs: &[PathBuf]) {
    let all_logs = || {
        logs.iter()
            .map(|l| {
                format!(
                    "--- {}\n{}",
                    l.display(),
                    std::fs::read_to_string(l).unwrap_or_default()
                )
            })
            .collect::<String>()
    };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        for child in children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("etcd exited ({status}) while starting:\n{}", all_logs());
            }
        }
        if client_ports.iter().all(|&port| health(port)) {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "etcd did not become healthy within {START_TIMEOUT:?}:\n{}",
                all_logs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether etcd answers `/health` with `"health":"true"`.
pub fn health(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}

/// A loopback port that is free now and not given to another test of this
/// process.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}
