//! Helpers for tests that run the real `skupper-token` binary: sites in a
//! temporary home, `serve` daemons stopped with SIGTERM, free ports.

// Each test file uses some of these.
#![allow(dead_code)]

pub mod etcd;
pub mod etcd_cluster;

use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_skupper-token");

/// A temporary home holding any number of sites.
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

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The directory of the site of `ns`.
    pub fn site_dir(&self, ns: &str) -> PathBuf {
        self.path().join("sites").join(ns)
    }

    /// The arguments that select this home and `ns`.
    pub fn base_args(&self, ns: &str) -> Vec<String> {
        vec![
            "--home".into(),
            self.path().join("sites").display().to_string(),
            "-n".into(),
            ns.into(),
        ]
    }

    pub fn cmd(&self, ns: &str) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(self.base_args(ns))
            .env_remove("SKUPPER_TOKEN_HOME")
            .env_remove("SKUPPER_TOKEN_NAMESPACE")
            .env_remove("SKUPPER_TOKEN_STORE");
        cmd
    }

    pub fn run(&self, ns: &str, args: &[&str]) -> Out {
        let output = self
            .cmd(ns)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run skupper-token");
        Out::from(output, ns, args)
    }

    /// Runs and requires success.
    /// Runs `args` on `ns` with the site in the store at `store`
    /// (`--store`, e.g. an `etcd://` URL).
    pub fn run_on(&self, store: &str, ns: &str, args: &[&str]) -> Out {
        let output = self
            .cmd(ns)
            .arg("--store")
            .arg(store)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run skupper-token");
        Out::from(output, ns, args)
    }

    /// [`Home::run_on`], which must succeed.
    pub fn ok_on(&self, store: &str, ns: &str, args: &[&str]) -> Out {
        let out = self.run_on(store, ns, args);
        assert_eq!(out.code, 0, "{out}");
        out
    }

    pub fn ok(&self, ns: &str, args: &[&str]) -> Out {
        let out = self.run(ns, args);
        assert_eq!(out.code, 0, "{out}");
        out
    }

    /// Creates an interior site with free ports and returns its claims port.
    pub fn init(&self, ns: &str) -> u16 {
        let (claims, ir, edge) = (free_port(), free_port(), free_port());
        self.init_on(ns, claims, ir, edge);
        claims
    }

    /// Creates an interior site for `ns` on the given ports.
    pub fn init_on(&self, ns: &str, claims: u16, inter_router: u16, edge: u16) {
        self.ok(
            ns,
            &[
                "init",
                "--ingress-host",
                "127.0.0.1",
                "--claims-port",
                &claims.to_string(),
                "--inter-router-port",
                &inter_router.to_string(),
                "--edge-port",
                &edge.to_string(),
            ],
        );
    }

    /// Starts `serve` for `ns` and waits until its claims port and its
    /// control socket answer.
    pub fn serve(&self, ns: &str, claims_port: u16) -> Daemon {
        self.serve_with(ns, claims_port, &[])
    }

    /// Starts `serve ARGS...` for `ns` and waits until `claims_port`
    /// answers on 127.0.0.1 and its control socket answers.
    pub fn serve_with(&self, ns: &str, claims_port: u16, args: &[&str]) -> Daemon {
        let child = self
            .cmd(ns)
            .arg("serve")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start serve");
        let mut daemon = Daemon { child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(20);
        let control = self.site_dir(ns).join("control.sock");
        // The control socket first, then the claims port: every probe that
        // reaches a listening claims port is one connection in serve's log
        // ("closed without an answer"), so it is made once.
        let ready = || {
            UnixStream::connect(&control).is_ok()
                && TcpStream::connect(("127.0.0.1", claims_port)).is_ok()
        };
        while !ready() {
            if daemon.exited() {
                panic!("serve exited before it listened on {claims_port}");
            }
            assert!(
                Instant::now() < deadline,
                "serve did not listen on {claims_port} and {}",
                control.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    /// `token create FILE EXTRA...` on `ns`; returns the file.
    pub fn token(&self, ns: &str, file: &str, extra: &[&str]) -> PathBuf {
        let path = self.file(file);
        let mut args = vec!["token", "create", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.ok(ns, &args);
        path
    }

    /// The names of the outstanding claims of `ns`.
    pub fn claims(&self, ns: &str) -> Vec<String> {
        self.ok(ns, &["-o", "json", "token", "status"]).json()["claims"]
            .as_array()
            .expect("a list of claims")
            .iter()
            .map(|c| c["name"].as_str().expect("a name").to_owned())
            .collect()
    }

    /// The site id of `ns` (`status -o json`).
    pub fn site_id(&self, ns: &str) -> String {
        self.ok(ns, &["-o", "json", "status"]).json()["id"]
            .as_str()
            .expect("an id")
            .to_owned()
    }

    /// What `link status` prints on `ns`.
    pub fn links_of(&self, ns: &str) -> String {
        self.ok(ns, &["link", "status"]).stdout
    }

    /// The site CA certificate of `ns`, from its site record (not from a
    /// file the site hands out).
    pub fn site_ca(&self, ns: &str) -> String {
        let text = std::fs::read_to_string(self.site_dir(ns).join("site/site.json"))
            .expect("the site record");
        let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        json["record"]["ca"]["cert-pem"]
            .as_str()
            .expect("the site record holds its CA certificate")
            .to_owned()
    }

    /// Runs `args` until its standard output contains `want` (20 s at
    /// most); returns that output.
    pub fn wait_for(&self, ns: &str, args: &[&str], want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.run(ns, args);
            if out.stdout.contains(want) {
                return out.stdout;
            }
            assert!(Instant::now() < deadline, "waited for {want:?}: {out}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// What a finished command printed.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub what: String,
}

impl Out {
    pub fn from(o: Output, ns: &str, args: &[&str]) -> Out {
        Out::described(o, &format!("-n {ns} {}", args.join(" ")))
    }

    /// How a command ended; `what` names it in failure messages.
    pub fn described(o: Output, what: &str) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            what: what.to_owned(),
        }
    }

    /// Standard output as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("standard output is not JSON ({e}): {self}"))
    }

    /// Standard output as YAML.
    pub fn yaml(&self) -> serde_json::Value {
        serde_saphyr::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("standard output is not YAML ({e}): {self}"))
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
    pub child: Option<Child>,
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

/// A port that is free now and that no other test of this process was
/// given (one list for every helper here, the etcd ones included).
pub use etcd::free_port;
