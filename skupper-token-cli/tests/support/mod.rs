//! What the command-line tests share: a temporary home for sites, running
//! the real `skupper-token` binary, and real `serve` daemons.

// Each test file uses only some of these helpers.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_skupper-token");

/// A temporary directory holding a home of sites (`sites/`) and any files
/// a test makes next to it.
pub struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        Home {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path next to the sites.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The directory of the site of `ns`.
    pub fn site_dir(&self, ns: &str) -> PathBuf {
        self.path().join("sites").join(ns)
    }

    /// The command for namespace `ns`, with this home.
    pub fn cmd(&self, ns: &str) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--home")
            .arg(self.path().join("sites"))
            .arg("-n")
            .arg(ns)
            .env_remove("SKUPPER_TOKEN_HOME")
            .env_remove("SKUPPER_TOKEN_NAMESPACE");
        cmd
    }

    pub fn run(&self, ns: &str, args: &[&str]) -> Out {
        let output = self.cmd(ns).args(args).output().expect("run skupper-token");
        Out::from(output, &format!("-n {ns} {}", args.join(" ")))
    }

    /// Runs and requires success.
    pub fn ok(&self, ns: &str, args: &[&str]) -> Out {
        let out = self.run(ns, args);
        assert_eq!(out.code, 0, "{out}");
        out
    }

    /// Creates an interior site with free ports and returns its claims port.
    pub fn init(&self, ns: &str) -> u16 {
        let (claims, ir, edge) = (free_port(), free_port(), free_port());
        self.ok(
            ns,
            &[
                "init",
                "--ingress-host",
                "127.0.0.1",
                "--claims-port",
                &claims.to_string(),
                "--inter-router-port",
                &ir.to_string(),
                "--edge-port",
                &edge.to_string(),
            ],
        );
        claims
    }

    /// Starts `serve` for `ns` and waits until its claims port answers.
    pub fn serve(&self, ns: &str, claims_port: u16) -> Daemon {
        let child = self
            .cmd(ns)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start serve");
        let daemon = Daemon { child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", claims_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "serve did not listen on {claims_port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    /// `token create FILE EXTRA...`, required to succeed.
    pub fn token(&self, ns: &str, file: &str, extra: &[&str]) -> PathBuf {
        let path = self.file(file);
        let mut args = vec!["token", "create", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.ok(ns, &args);
        path
    }

    /// The names of the outstanding claims of `ns`.
    pub fn claims(&self, ns: &str) -> Vec<String> {
        let out = self.ok(ns, &["-o", "json", "token", "status"]);
        let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
        json["claims"]
            .as_array()
            .expect("a list of claims")
            .iter()
            .map(|c| c["name"].as_str().expect("a name").to_owned())
            .collect()
    }
}

/// How a command ended.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    what: String,
}

impl Out {
    pub fn from(o: Output, what: &str) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            what: what.to_owned(),
        }
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "skupper-token {} exited {}\n--- stdout\n{}--- stderr\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }
}

/// A running `serve`, stopped with SIGTERM when dropped.
pub struct Daemon {
    child: Option<Child>,
}

impl Daemon {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Whether it has exited. Once it has, it is reaped and forgotten (so
    /// that its process id, which may be reused, is never signalled).
    pub fn exited(&mut self) -> bool {
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        if let Ok(Some(_)) = child.try_wait() {
            self.child = None;
            return true;
        }
        false
    }

    /// Stops it with SIGTERM and returns its exit code and output.
    pub fn stop(mut self) -> (Option<i32>, String) {
        let mut child = self.child.take().expect("running");
        terminate(&mut child);
        let out = child.wait_with_output().expect("wait");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}
