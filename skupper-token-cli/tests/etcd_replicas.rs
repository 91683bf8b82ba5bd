//! Three `serve` replicas of one site, its records in a real three-member
//! etcd cluster started by each test; the sites that link to it or redeem
//! its tokens are ordinary sites on files. Members and replicas are killed
//! while redemptions and links go on; one test puts haproxy (a TCP
//! balancer) in front of the replicas.
// The CLI is where the OS is allowed in: its tests use files, threads,
// clocks and processes.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
// The tests print what they measured (how long a drop took, how many uses
// a killed replica spent) in their output.
#![allow(clippy::print_stderr)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::etcd_cluster::EtcdCluster;
use common::{free_port, Home, Out};

/// The site's prefix in etcd; its records are under `/skupper/west/`.
const PREFIX: &str = "/skupper";

/// One test at a time: each starts three etcd members, three replicas and
/// up to thirty redeemers, and two of them side by side on two cores make
/// processes miss the claims server's 2 s deadline for a request head.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One `serve` replica of the site, with a home of its own (for its
/// control socket and lock) and its own listen ports; its output goes to
/// a log file that the test reads while it runs.
struct Replica {
    home: Home,
    claims: u16,
    inter_router: u16,
    edge: u16,
    child: Option<Child>,
}

impl Replica {
    fn log_path(&self) -> PathBuf {
        self.home.file("serve.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn start(&mut self, store: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("replica log");
        let child = self
            .home
            .cmd("west")
            .arg("--store")
            .arg(store)
            .arg("serve")
            .arg("--claims-listen")
            .arg(format!("127.0.0.1:{}", self.claims))
            .arg("--inter-router-listen")
            .arg(format!("127.0.0.1:{}", self.inter_router))
            .arg("--edge-listen")
            .arg(format!("127.0.0.1:{}", self.edge))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("replica log"))
            .stderr(log)
            .spawn()
            .expect("start serve");
        self.child = Some(child);
        wait_until(Duration::from_secs(20), "the replica to run", || {
            self.log().contains("is running")
        });
    }

    /// Kills it with SIGKILL and waits for it to exit.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
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

/// The site `west` in a three-member etcd and three replicas serving it.
/// The site advertises replica 0's ports; a token is pointed at another
/// replica by rewriting its port.
struct Site {
    // Dropped in this order: the replicas before etcd, then the turn.
    replicas: Vec<Replica>,
    admin: Home,
    store: String,
    cluster: EtcdCluster,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl Site {
    fn start() -> Site {
        let turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let cluster = EtcdCluster::start(3);
        let store = cluster.store_url(PREFIX);
        let mut replicas: Vec<Replica> = (0..3)
            .map(|_| Replica {
                home: Home::new(),
                claims: free_port(),
                inter_router: free_port(),
                edge: free_port(),
                child: None,
            })
            .collect();
        let admin = Home::new();
        let r0 = &replicas[0];
        let (claims, ir, edge) = (
            r0.claims.to_string(),
            r0.inter_router.to_string(),
            r0.edge.to_string(),
        );
        admin.ok_on(
            &store,
            "west",
            &[
                "init",
                "--ingress-host",
                "127.0.0.1",
                "--claims-port",
                &claims,
                "--inter-router-port",
                &ir,
                "--edge-port",
                &edge,
            ],
        );
        for replica in &mut replicas {
            replica.start(&store);
        }
        Site {
            replicas,
            admin,
            store,
            cluster,
            _turn: turn,
        }
    }

    /// Runs `args` on west (in etcd) from the admin home; requires success.
    fn ok(&self, args: &[&str]) -> Out {
        self.admin.ok_on(&self.store, "west", args)
    }

    /// Every replica's log, for failure messages.
    fn logs(&self) -> String {
        self.replicas
            .iter()
            .enumerate()
            .map(|(i, r)| format!("--- replica {i}\n{}", r.log()))
            .collect()
    }

    /// `text` with the advertised claims port (replica 0's) replaced by
    /// replica `i`'s.
    fn claims_of(&self, text: &str, i: usize) -> String {
        text.replace(
            &format!("https://127.0.0.1:{}/", self.replicas[0].claims),
            &format!("https://127.0.0.1:{}/", self.replicas[i].claims),
        )
    }

    /// The certificates west recorded as issued by redeeming `token`
    /// (`token status -o json`): their serials.
    fn recorded_serials(&self, token: &str) -> Vec<String> {
        let status = self.ok(&["-o", "json", "token", "status"]).json();
        status["certificates"]
            .as_array()
            .expect("a list of certificates")
            .iter()
            .filter(|c| c["token"] == token)
            .map(|c| c["serial"].as_str().expect("a serial").to_owned())
            .collect()
    }
}

fn wait_until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "waited {timeout:?} for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A site `east` on files, in a home of its own, with free ports.
fn redeemer() -> (Home, u16) {
    let home = Home::new();
    let port = home.init("east");
    (home, port)
}

/// Starts `ARGS...` on `east` of `home`, without waiting.
fn start(home: &Home, args: &[&str]) -> Child {
    home.cmd("east")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start skupper-token")
}

fn finish(child: Child, what: &str) -> Out {
    Out::described(child.wait_with_output().expect("wait"), what)
}

/// Writes `text` to `name` in `home`; returns its path.
fn write(home: &Home, name: &str, text: &str) -> String {
    let path = home.file(name);
    std::fs::write(&path, text).expect("write token");
    path.display().to_string()
}

/// The outgoing links of `east` in `home`.
fn outgoing(home: &Home) -> Vec<serde_json::Value> {
    home.ok("east", &["-o", "json", "link", "status"]).json()["outgoing"]
        .as_array()
        .expect("a list of links")
        .clone()
}

/// The serials (uppercase hex, as west records them) of the client
/// certificates in the link records of `east` in `home`.
fn held_serials(home: &Home) -> Vec<String> {
    let dir = home.site_dir("east").join("link");
    let mut serials = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("the link directory") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("link record");
        serials.extend(client_serials(&text));
    }
    serials
}

/// The serials of the client certificates (`tls.crt` of the Secret in
/// its credentials, 1.x, or in its Link file, 2.x) in a stored link record.
fn client_serials(text: &str) -> Vec<String> {
    use base64::Engine as _;
    let json: serde_json::Value = serde_json::from_str(text).expect("JSON");
    let mut serials = Vec::new();
    for field in ["credentials", "link-file"] {
        let Some(secret) = json["record"][field].as_str() else {
            continue;
        };
        for line in secret.lines() {
            let Some(crt) = line.trim().strip_prefix("tls.crt: ") else {
                continue;
            };
            let crt = base64::engine::general_purpose::STANDARD
                .decode(crt)
                .expect("base64");
            let (_, pem) = x509_parser::pem::parse_x509_pem(&crt).expect("PEM");
            let cert = pem.parse_x509().expect("a certificate");
            serials.push(hex_serial(cert.raw_serial()));
        }
    }
    serials
}

fn hex_serial(raw: &[u8]) -> String {
    let raw = match raw {
        [0, rest @ ..] if !rest.is_empty() => rest,
        _ => raw,
    };
    raw.iter().map(|b| format!("{b:02X}")).collect()
}

/// What `link status -o json` says of east's only outgoing link.
fn link_state(home: &Home) -> serde_json::Value {
    let links = outgoing(home);
    assert_eq!(links.len(), 1, "{links:?}");
    links[0].clone()
}

/// Races 30 redeemers, each running `command FILE` with the token text
/// pointed at replica `i % 3`, against a token allowing 5 redemptions,
/// while the etcd leader is killed and restarted; returns the outcomes.
fn race(site: &mut Site, token_text: &str, command: &[&str]) -> Vec<(Home, Out)> {
    let sites: Vec<(Home, u16)> = (0..30).map(|_| redeemer()).collect();
    let files: Vec<String> = sites
        .iter()
        .enumerate()
        .map(|(i, (home, _))| write(home, "token.yaml", &site.claims_of(token_text, i % 3)))
        .collect();
    let mut children = Vec::new();
    let begun = Instant::now();
    for (i, (home, _)) in sites.iter().enumerate() {
        if i == 10 {
            let leader = site.cluster.leader();
            site.cluster.stop_member(leader);
            eprintln!(
                "killed etcd member {leader} (the leader) {:?} after the first redeemer",
                begun.elapsed()
            );
        }
        let mut args = command.to_vec();
        args.push(&files[i]);
        children.push(start(home, &args));
    }
    std::thread::sleep(Duration::from_millis(500));
    let stopped = (0..3).find(|&i| !site.cluster.is_running(i)).unwrap();
    site.cluster.resume_member(stopped);
    eprintln!(
        "etcd member {stopped} resumed and healthy {:?} after the first redeemer",
        begun.elapsed()
    );
    let outs: Vec<Out> = children
        .into_iter()
        .enumerate()
        .map(|(i, c)| finish(c, &format!("redeemer {i} (replica {})", i % 3)))
        .collect();
    eprintln!(
        "all 30 redeemers done {:?} after the first",
        begun.elapsed()
    );
    sites
        .into_iter()
        .zip(outs)
        .map(|((home, _), out)| (home, out))
        .collect()
}

#[test]
fn thirty_redeemers_on_three_replicas_spend_five_uses_while_the_etcd_leader_restarts() {
    let mut site = Site::start();
    let token = site.admin.file("claim.yaml");
    site.ok(&["token", "create", token.to_str().unwrap(), "--uses", "5"]);
    let text = std::fs::read_to_string(&token).unwrap();
    let results = race(&mut site, &text, &["link", "create"]);

    let (won, lost): (Vec<_>, Vec<_>) = results.iter().partition(|(_, out)| out.code == 0);
    let all = || {
        results
            .iter()
            .map(|(_, o)| o.to_string())
            .collect::<String>()
            + &site.logs()
    };
    assert_eq!(won.len(), 5, "{}", all());
    for (home, out) in &won {
        assert_eq!(outgoing(home).len(), 1, "{out}");
    }
    for (home, out) in &lost {
        assert_eq!(out.code, 1, "{out}\n{}", site.logs());
        assert!(
            out.stderr
                .contains("Failed to redeem claim: No such claim: no uses left (5 uses allowed)"),
            "{out}"
        );
        assert_eq!(outgoing(home), Vec::<serde_json::Value>::new(), "{out}");
    }
    let status = site.ok(&["-o", "json", "token", "status"]).json();
    let claim = &status["claims"][0];
    assert_eq!(claim["claims-made"], 5, "{status}");
    assert_eq!(claim["uses-remaining"], 0, "{status}");
    let name = claim["name"].as_str().unwrap();
    let recorded = site.recorded_serials(name);
    assert_eq!(recorded.len(), 5, "{status}");
    // Each winner holds one of the five recorded certificates.
    let held: BTreeSet<String> = won.iter().flat_map(|(h, _)| held_serials(h)).collect();
    assert_eq!(held, recorded.into_iter().collect(), "{status}");
}

#[test]
fn thirty_redeemers_on_three_replicas_spend_five_grant_redemptions_while_the_etcd_leader_restarts()
{
    let mut site = Site::start();
    let token = site.admin.file("grant.yaml");
    site.ok(&[
        "token",
        "issue",
        token.to_str().unwrap(),
        "--name",
        "for-many",
        "--redemptions-allowed",
        "5",
    ]);
    let text = std::fs::read_to_string(&token).unwrap();
    let results = race(&mut site, &text, &["token", "redeem"]);

    let (won, lost): (Vec<_>, Vec<_>) = results.iter().partition(|(_, out)| out.code == 0);
    let all = || {
        results
            .iter()
            .map(|(_, o)| o.to_string())
            .collect::<String>()
            + &site.logs()
    };
    assert_eq!(won.len(), 5, "{}", all());
    for (home, out) in &won {
        assert_eq!(outgoing(home).len(), 1, "{out}");
    }
    for (home, out) in &lost {
        assert_eq!(out.code, 1, "{out}\n{}", site.logs());
        assert!(
            out.stderr.contains(
                "the AccessToken of link \"link1\" was not redeemed: Controller got failed response: 404 (Not Found) No such access granted"
            ),
            "{out}"
        );
        assert_eq!(outgoing(home), Vec::<serde_json::Value>::new(), "{out}");
    }
    let status = site.ok(&["-o", "json", "token", "status"]).json();
    let grant = &status["grants"][0];
    assert_eq!(grant["name"], "for-many", "{status}");
    assert_eq!(grant["redemptions-made"], 5, "{status}");
    assert_eq!(grant["state"], "used up", "{status}");
    let recorded = site.recorded_serials("for-many");
    assert_eq!(recorded.len(), 5, "{status}");
    let held: BTreeSet<String> = won.iter().flat_map(|(h, _)| held_serials(h)).collect();
    assert_eq!(held, recorded.into_iter().collect(), "{status}");
}

/// The claim record of `name` in etcd, and the serials it and its
/// moved-out batches record.
fn claim_in_etcd(site: &Site, name: &str) -> (serde_json::Value, Vec<String>) {
    let text = site.cluster.get(&format!("{PREFIX}/west/claim/{name}"));
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("claim record ({e}): {text}"));
    // The record as the file store writes it, without its envelope.
    let record = json;
    let mut serials: Vec<String> = record["issued"]
        .as_array()
        .expect("issued")
        .iter()
        .map(|c| c["serial"].as_str().unwrap().to_owned())
        .collect();
    for key in site.cluster.keys(&format!("{PREFIX}/west/claim-issued/")) {
        let text = site.cluster.get(&key);
        let batch: serde_json::Value = serde_json::from_str(&text).unwrap();
        if batch["claim"] == name {
            serials.extend(
                batch["certs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["serial"].as_str().unwrap().to_owned()),
            );
        }
    }
    (record, serials)
}

#[test]
fn a_replica_killed_during_redemptions_spends_no_use_without_its_certificate() {
    let mut site = Site::start();
    let token = site.admin.file("claim.yaml");
    site.ok(&["token", "create", token.to_str().unwrap(), "--uses", "30"]);
    let text = site.claims_of(&std::fs::read_to_string(&token).unwrap(), 1);
    let name = site.ok(&["-o", "json", "token", "status"]).json()["claims"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let sites: Vec<(Home, u16)> = (0..20).map(|_| redeemer()).collect();
    let children: Vec<Child> = sites
        .iter()
        .map(|(home, _)| {
            let file = write(home, "token.yaml", &text);
            start(home, &["link", "create", &file])
        })
        .collect();
    // Kill replica 1 once it has answered a few.
    let begun = Instant::now();
    wait_until(Duration::from_secs(30), "three redemptions", || {
        claim_in_etcd(&site, &name).0["claims-made"]
            .as_u64()
            .unwrap()
            >= 3
    });
    site.replicas[1].kill();
    eprintln!(
        "killed replica 1 {:?} after the redeemers started",
        begun.elapsed()
    );
    let outs: Vec<Out> = children
        .into_iter()
        .enumerate()
        .map(|(i, c)| finish(c, &format!("redeemer {i}")))
        .collect();

    // One more, once the replica is gone.
    let (late, _) = redeemer();
    let file = write(&late, "token.yaml", &text);
    let late = late.run("east", &["link", "create", &file]);

    let (record, serials) = claim_in_etcd(&site, &name);
    let spent =
        record["uses-allowed"].as_u64().unwrap() - record["uses-remaining"].as_u64().unwrap();
    assert_eq!(spent as usize, serials.len(), "{record}");
    assert_eq!(record["claims-made"].as_u64().unwrap(), spent, "{record}");
    let unique: BTreeSet<&String> = serials.iter().collect();
    assert_eq!(unique.len(), serials.len(), "a serial twice: {serials:?}");
    let port = site.replicas[1].claims;
    let hint = "the site that issued the token could not be reached, or was busy or failing: try the same command again later";
    let closed = format!(
        "error: Failed to redeem claim: sending the request to 127.0.0.1:{port} failed: connection error\n{hint}"
    );
    let refused = format!(
        "error: Failed to redeem claim: cannot connect to 127.0.0.1:{port}: Connection refused (os error 111) (3 attempts)\n{hint}"
    );
    assert_eq!(late.code, 4, "{late}");
    assert_eq!(late.stderr.trim_end(), refused, "{late}");
    let mut linked = 0;
    for ((home, _), out) in sites.iter().zip(&outs) {
        if out.code == 0 {
            linked += 1;
            let held = held_serials(home);
            assert_eq!(held.len(), 1, "{out}");
            assert!(serials.contains(&held[0]), "{out}\n{serials:?}");
        } else {
            assert_eq!(out.code, 4, "{out}");
            let stderr = out.stderr.trim_end();
            assert!(stderr == closed || stderr == refused, "{out}");
            assert_eq!(outgoing(home), Vec::<serde_json::Value>::new(), "{out}");
        }
    }
    // A use spent for an answer the redeemer never got is allowed (its
    // certificate is recorded, and granted to no one).
    eprintln!("{spent} uses spent (each with its certificate), {linked} of 20 redeemers linked");
}

#[test]
fn a_link_stays_up_while_every_etcd_member_is_down_and_linking_resumes_after() {
    let mut site = Site::start();
    let cert = site.admin.file("cert.yaml");
    site.ok(&["token", "create", cert.to_str().unwrap(), "-t", "cert"]);
    let (east, east_port) = redeemer();
    east.ok("east", &["link", "create", cert.to_str().unwrap()]);
    let _east_serve = east.serve("east", east_port);
    east.ok("east", &["link", "status", "link1", "--wait", "20"]);

    site.cluster.stop_all();
    let down = Instant::now();
    let mut polls = 0;
    while down.elapsed() < Duration::from_secs(7) {
        let link = link_state(&east);
        assert_eq!(link["state"], "connected", "{link}\n{}", site.logs());
        polls += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "east's link was connected in {polls} polls over {:?} with etcd down",
        down.elapsed()
    );
    // The replica holding the link noticed (one of its readers, of the
    // site record or of the links, could not reach etcd for longer than
    // the store retries; which one comes first depends on timing).
    let logs = site.replicas[0].log();
    site.cluster.resume_all();
    eprintln!("etcd back {:?} after it stopped", down.elapsed());
    let endpoints: Vec<String> = site
        .cluster
        .endpoints()
        .iter()
        .map(|e| format!("http://{e}"))
        .collect();
    let unavailable = format!(
        "(etcd at {}, prefix {PREFIX}/west): etcd did not answer (",
        endpoints.join(", ")
    );
    assert!(
        logs.lines().any(|l| (l.contains(
            "reading the site record: store unavailable: cannot read record site \"site\" "
        ) || l
            .contains("reading the links: store unavailable: cannot list the link records "))
            && l.contains(&unavailable)),
        "{logs}"
    );

    let token = site.admin.file("claim.yaml");
    site.ok(&["token", "create", token.to_str().unwrap()]);
    let text = site.claims_of(&std::fs::read_to_string(&token).unwrap(), 2);
    let (north, north_port) = redeemer();
    let file = write(&north, "token.yaml", &text);
    north.ok("east", &["link", "create", &file]);
    let _north_serve = north.serve("east", north_port);
    north.ok("east", &["link", "status", "link1", "--wait", "20"]);
    let link = link_state(&east);
    assert_eq!(link["state"], "connected", "{link}");
}

#[test]
fn revoke_access_drops_links_on_every_replica_and_every_replica_refuses_them() {
    let site = Site::start();
    let cert = site.admin.file("cert.yaml");
    site.ok(&["token", "create", cert.to_str().unwrap(), "-t", "cert"]);
    let text = std::fs::read_to_string(&cert).unwrap();
    let advertised = format!("inter-router-port: \"{}\"", site.replicas[0].inter_router);
    assert!(text.contains(&advertised), "{text}");
    let per_replica = |i: usize| {
        text.replace(
            &advertised,
            &format!("inter-router-port: \"{}\"", site.replicas[i].inter_router),
        )
    };
    // One linked site per replica.
    let linked: Vec<(Home, common::Daemon)> = (0..3)
        .map(|i| {
            let (home, port) = redeemer();
            let file = write(&home, "cert.yaml", &per_replica(i));
            home.ok("east", &["link", "create", &file]);
            let serve = home.serve("east", port);
            home.ok("east", &["link", "status", "link1", "--wait", "20"]);
            (home, serve)
        })
        .collect();

    // Sites holding credentials of one replica each that they have not
    // used yet: they dial once revoke-access is done.
    let late: Vec<(Home, u16)> = (0..3)
        .map(|i| {
            let (home, port) = redeemer();
            let file = write(&home, "cert.yaml", &per_replica(i));
            home.ok("east", &["link", "create", &file]);
            (home, port)
        })
        .collect();

    let begun = Instant::now();
    site.ok(&["revoke-access"]);
    for (i, (home, _)) in linked.iter().enumerate() {
        let deadline = begun + Duration::from_secs(10);
        loop {
            let link = link_state(home);
            if link["state"] != "connected" {
                eprintln!(
                    "the link to replica {i} dropped {:?} after revoke-access began",
                    begun.elapsed()
                );
                assert_eq!(link["state"], "revoked", "{link}");
                assert!(
                    link["reason"]
                        .as_str()
                        .unwrap()
                        .starts_with("access revoked by west (site "),
                    "{link}"
                );
                break;
            }
            assert!(Instant::now() < deadline, "{link}\n{}", site.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // The credentials from before are refused by every replica.
    let _serving: Vec<common::Daemon> = late
        .iter()
        .map(|(home, port)| home.serve("east", *port))
        .collect();
    for (i, (home, _)) in late.iter().enumerate() {
        let port = site.replicas[i].inter_router;
        let want = format!(
            "TLS handshake failed: the remote site's certificate is not from the CA in this link's token (invalid peer certificate: BadSignature): the site may have been re-created or changed its CA, or 127.0.0.1:{port} is not the site that issued the token (with 127.0.0.1:{port})"
        );
        wait_until(Duration::from_secs(10), "a refused dial", || {
            link_state(home)["reason"] == want.as_str()
        });
        let link = link_state(home);
        assert_eq!(link["state"], "not-connected", "{link}");
        let log = site.replicas[i].log();
        assert!(
            log.contains("the site CA changed (generation 2)"),
            "replica {i}:\n{log}"
        );
        assert!(
            log.contains("on the inter-router port refused: TLS handshake failed: received fatal alert: DecryptError (the dialing site refused this site's certificate: its token may be from before a revoke-access, or from another site)"),
            "replica {i}:\n{log}"
        );
    }
}

/// Whether haproxy is installed; without it the balancer test says so and
/// passes, unless SKUPPER_TOKEN_REQUIRE_TOOLS is set (as `.ci/run` does).
fn have_haproxy() -> bool {
    let ok = Command::new("haproxy").arg("-v").output().is_ok();
    if !ok {
        assert!(
            std::env::var_os("SKUPPER_TOKEN_REQUIRE_TOOLS").is_none(),
            "haproxy is missing but SKUPPER_TOKEN_REQUIRE_TOOLS is set"
        );
        eprintln!("note: haproxy not found (Debian: apt-get install haproxy); skipping");
    }
    ok
}

/// haproxy in TCP mode on `port`, in front of the replicas' inter-router
/// ports, checking them every 500 ms; stopped when dropped.
struct Balancer {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Balancer {
    fn start(port: u16, backends: &[u16]) -> Balancer {
        let dir = tempfile::tempdir().expect("temp dir");
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!("    server r{i} 127.0.0.1:{p} check inter 500ms fall 2 rise 1\n")
            })
            .collect();
        let config = format!(
            "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 1h\n    timeout server 1h\n\
             frontend inter-router\n    bind 127.0.0.1:{port}\n    default_backend inter-router\n\
             backend inter-router\n    balance leastconn\n{servers}"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).expect("haproxy config");
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(&path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        wait_until(Duration::from_secs(10), "haproxy to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Balancer { child, _dir: dir }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_link_through_a_balancer_moves_to_another_replica_when_its_replica_is_killed() {
    if !have_haproxy() {
        return;
    }
    let mut site = Site::start();
    let port = free_port();
    let backends: Vec<u16> = site.replicas.iter().map(|r| r.inter_router).collect();
    let _balancer = Balancer::start(port, &backends);
    let cert = site.admin.file("cert.yaml");
    site.ok(&["token", "create", cert.to_str().unwrap(), "-t", "cert"]);
    let text = std::fs::read_to_string(&cert).unwrap().replace(
        &format!("inter-router-port: \"{}\"", site.replicas[0].inter_router),
        &format!("inter-router-port: \"{port}\""),
    );
    let (east, east_port) = redeemer();
    let file = write(&east, "cert.yaml", &text);
    east.ok("east", &["link", "create", &file]);
    let _serve = east.serve("east", east_port);
    east.ok("east", &["link", "status", "link1", "--wait", "20"]);

    let accepted = "incoming link link1 from site east";
    let holder = (0..3)
        .find(|&i| site.replicas[i].log().contains(accepted))
        .unwrap_or_else(|| panic!("no replica accepted the link:\n{}", site.logs()));
    site.replicas[holder].kill();
    let killed = Instant::now();
    let moved = || -> Vec<usize> {
        (0..3)
            .filter(|&i| i != holder && site.replicas[i].log().contains(accepted))
            .collect()
    };
    wait_until(
        Duration::from_secs(30),
        "another replica to accept the link",
        || !moved().is_empty(),
    );
    east.ok("east", &["link", "status", "link1", "--wait", "30"]);
    let now_on = moved();
    assert_eq!(now_on.len(), 1, "{}", site.logs());
    eprintln!(
        "the link moved from replica {holder} to replica {} through the balancer {:?} after the kill",
        now_on[0],
        killed.elapsed()
    );
    let link = link_state(&east);
    assert_eq!(link["state"], "connected", "{link}");
    assert_eq!(link["target"], format!("127.0.0.1:{port}"), "{link}");
}
