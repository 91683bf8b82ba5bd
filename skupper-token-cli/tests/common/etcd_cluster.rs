//! A real etcd cluster of N members for tests: free loopback ports, one
//! temporary directory, no `ETCD_*` variables from the environment; every
//! member started, then waited for until the cluster is healthy; members
//! stopped (SIGKILL) and resumed on the same ports and data; killed (and
//! the data deleted) on drop. The logs are printed when a test fails.

// Each test file uses some of these.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command};

use super::etcd::{spawn_member, wait_healthy, Member};
use super::free_port;

/// A running (or partly stopped) etcd cluster.
pub struct EtcdCluster {
    dir: tempfile::TempDir,
    members: Vec<ClusterMember>,
    initial_cluster: String,
}

struct ClusterMember {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

impl EtcdCluster {
    /// Starts `n` members and waits until every one is healthy.
    pub fn start(n: usize) -> EtcdCluster {
        let dir = tempfile::Builder::new()
            .prefix("skupper-token-etcd-cluster-")
            .tempdir()
            .expect("temp dir for etcd");
        let members: Vec<ClusterMember> = (0..n)
            .map(|i| ClusterMember {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            dir,
            members,
            initial_cluster,
        };
        cluster.resume_all();
        cluster
    }

    /// How many members the cluster has.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// `127.0.0.1:PORT` of every member, in order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// An `etcd://` store URL naming every member, with `prefix`.
    pub fn store_url(&self, prefix: &str) -> String {
        format!("etcd://{}{prefix}", self.endpoints().join(","))
    }

    /// Stops member `i` (SIGKILL) and waits for it to exit. Its data stays.
    pub fn stop_member(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again on the same ports and data, and waits until
    /// every running member is healthy.
    pub fn resume_member(&mut self, i: usize) {
        self.spawn(i);
        self.wait_running_healthy();
    }

    /// Stops every member (SIGKILL).
    pub fn stop_all(&mut self) {
        for i in 0..self.members.len() {
            self.stop_member(i);
        }
    }

    /// Starts every stopped member and waits until all are healthy.
    pub fn resume_all(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].child.is_none() {
                self.spawn(i);
            }
        }
        self.wait_running_healthy();
    }

    /// Whether member `i` is running.
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// The index of the current leader, as the running members report it
    /// (`etcdctl endpoint status -w json`, where member ids are decimal).
    pub fn leader(&self) -> usize {
        let running: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.is_running(i))
            .collect();
        let endpoints: Vec<String> = running
            .iter()
            .map(|&i| format!("http://127.0.0.1:{}", self.members[i].client_port))
            .collect();
        let out = self.ctl_on(&endpoints.join(","), &["endpoint", "status", "-w", "json"]);
        let statuses: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("endpoint status ({e}): {out}"));
        let statuses = statuses.as_array().expect("a list of statuses");
        let leader = statuses[0]["Status"]["leader"]
            .as_u64()
            .unwrap_or_else(|| panic!("no leader: {out}"));
        let at = statuses
            .iter()
            .position(|s| s["Status"]["header"]["member_id"].as_u64() == Some(leader))
            .unwrap_or_else(|| panic!("the leader {leader} is not a running member: {out}"));
        running[at]
    }

    /// Runs `etcdctl` (API v3) against every running member; returns its
    /// standard output.
    pub fn ctl(&self, args: &[&str]) -> String {
        let endpoints: Vec<String> = (0..self.members.len())
            .filter(|&i| self.is_running(i))
            .map(|i| format!("http://127.0.0.1:{}", self.members[i].client_port))
            .collect();
        self.ctl_on(&endpoints.join(","), args)
    }

    fn ctl_on(&self, endpoints: &str, args: &[&str]) -> String {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", endpoints])
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

    /// The value of `key` (empty when there is none).
    pub fn get(&self, key: &str) -> String {
        self.ctl(&["get", key, "--print-value-only"])
    }

    /// The keys under `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.ctl(&["get", "--prefix", "--keys-only", prefix])
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// What every member wrote, for failure messages.
    pub fn logs(&self) -> String {
        (0..self.members.len())
            .map(|i| {
                format!(
                    "--- etcd member {i}\n{}",
                    std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
                )
            })
            .collect()
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.log", self.members[i].name))
    }

    fn spawn(&mut self, i: usize) {
        assert!(
            self.members[i].child.is_none(),
            "etcd member {i} is already running"
        );
        let data = self.dir.path().join(&self.members[i].name);
        let log = self.log_path(i);
        let member = &self.members[i];
        let child = spawn_member(&Member {
            name: &member.name,
            data: &data,
            client_port: member.client_port,
            peer_port: member.peer_port,
            initial_cluster: &self.initial_cluster,
            log: &log,
            tls: None,
        });
        self.members[i].child = Some(child);
    }

    fn wait_running_healthy(&mut self) {
        let logs: Vec<PathBuf> = (0..self.members.len()).map(|i| self.log_path(i)).collect();
        let ports: Vec<u16> = self
            .members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| m.client_port)
            .collect();
        let mut children: Vec<&mut Child> = self
            .members
            .iter_mut()
            .filter_map(|m| m.child.as_mut())
            .collect();
        wait_healthy(&mut children, &ports, &logs);
    }
}

impl Drop for EtcdCluster {
    // A failing test shows what etcd said.
    #[allow(clippy::print_stderr)]
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        self.stop_all();
        // The temporary directory (with the members' preallocated WALs) is
        // removed when `dir` drops.
    }
}
