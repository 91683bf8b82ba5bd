//! `redeem-load`: load on a real `skupper-token serve`, measured from
//! outside, against the targets of issue 12 (and issue 5 before it).
//!
//! - `redeem` (the default): a site in a temporary home, `serve` on
//!   loopback, K claim tokens, then N client threads redeeming them over
//!   HTTPS (TLS 1.3, a new connection per redemption, as `link create`
//!   does) for D seconds or a fixed count. Every redemption is a durable
//!   write through the file store. Prints redemptions/s, latency
//!   percentiles, errors by kind, and the `serve` process's RSS (`VmHWM`
//!   and `VmRSS` from `/proc/<pid>/status`) and CPU time.
//! - `links`: M sites, each redeeming one use of a claim and then keeping a
//!   live mutual-TLS link to the one `serve`. The linking sites are real
//!   `skupper-token serve` processes, or (for large M) edge sites in this
//!   process, each with its own `LinkRuntime`, store and certificate.
//!   Prints the time until all are connected, each link's connect time,
//!   and the `serve` process's RSS before and after (per link).
//!
//! The numbers are reported, never asserted. `--json` prints one JSON line
//! on standard output for scripts (the table then goes to standard error).
//! Every process this tool starts is stopped when it ends, also on Ctrl-C
//! or a panic.
// A load tool starts processes, reads the clock and /proc, and prints.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use benches::services::{free_port, stop_child, Etcd, EtcdMetrics, Haproxy};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;
use skupper_token::claim::RedeemRequest;
use skupper_token::site::{LinkOptions, Site, SiteConfig, SiteMode};
use skupper_token::store::MemoryStore;
use skupper_token::token::{ClaimToken, Token};
use skupper_token::transport::TransportError;
use skupper_token::version::VERSION;
use skupper_token_cli::control::{self, Request, Response};
use skupper_token_cli::https::ClientOptions;
use skupper_token_cli::links::{LinkEvent, LinkRuntime, RuntimeOptions};
use skupper_token_cli::os_random::OsRandom;
use skupper_token_cli::runtime::redeem::RedeemClient;
use time::OffsetDateTime;

const AFTER_HELP: &str = "\
Examples:
  # 16 clients redeem 16 unlimited claims for 10 s (the issue's budget run)
  cargo run --release -p benches --bin redeem-load
  # 32 clients, exactly 5000 redemptions of 5000 one-use claims
  cargo run --release -p benches --bin redeem-load -- -c 32 --count 5000 --claims 5000 --uses 1
  # 100 sites linked to one serve, each a real 'skupper-token serve'
  cargo run --release -p benches --bin redeem-load -- links --sites 100 --linkers process
  # 1000 edge sites in this process, each with its own link runtime
  cargo run --release -p benches --bin redeem-load -- links --sites 1000
  # one JSON line for scripts (the table goes to standard error)
  cargo run --release -p benches --bin redeem-load -- --json > redeem.json
  # the site in etcd, then three serve replicas on it behind haproxy
  cargo run --release -p benches --bin redeem-load -- --etcd
  cargo run --release -p benches --bin redeem-load -- --etcd --replicas 3
  # an already built binary, and keep the temporary home to read the logs
  cargo run --release -p benches --bin redeem-load -- --bin target/release/skupper-token --keep

Budget (issues 5 and 12): at least 1,000 redemptions/s with 16 clients, p99
at most 50 ms, serve CPU at most 0.6 ms per redemption; 10,000 live
incoming links on one serve, all connected, serve RSS at most 150 MiB, at
most 16 threads, no disconnect while held (the target holds them 60 s:
--hold 60).";

/// Load on a real `skupper-token serve`: claim redemptions over HTTPS, or
/// many sites linked to it. Measures and reports; asserts nothing.
#[derive(Debug, Parser)]
#[command(
    name = "redeem-load",
    after_help = AFTER_HELP,
    subcommand_negates_reqs = true
)]
struct Cli {
    /// The `skupper-token` binary [default: build it with `cargo build
    /// --release -p skupper-token-cli` and use that].
    #[arg(long, global = true, value_name = "PATH")]
    bin: Option<PathBuf>,
    /// Print one JSON line with the results on standard output (the table
    /// goes to standard error).
    #[arg(long, global = true)]
    json: bool,
    /// Keep the temporary home (site directories and serve logs).
    #[arg(long, global = true)]
    keep: bool,
    /// What to load.
    #[command(subcommand)]
    mode: Option<Mode>,
    /// Without a subcommand: `redeem` with these options.
    #[command(flatten)]
    redeem: RedeemArgs,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Concurrent claim redemptions over HTTPS (the default).
    Redeem(RedeemArgs),
    /// M sites linked to one serve: connect time and memory per link.
    Links(LinksArgs),
}

#[derive(Debug, Clone, Args)]
struct RedeemArgs {
    /// Concurrent client threads.
    #[arg(short = 'c', long, default_value_t = 16)]
    clients: usize,
    /// Seconds to run (ignored with --count).
    #[arg(short = 'd', long, default_value_t = 10.0, value_name = "SECONDS")]
    duration: f64,
    /// Stop after this many redemptions (successful or not) instead.
    #[arg(long)]
    count: Option<u64>,
    /// Claim tokens to create; clients take them in turn. Up to 64 are made
    /// with `skupper-token token create`, more through the library on the
    /// same site directory (the same code, without a process each).
    #[arg(long, default_value_t = 16)]
    claims: usize,
    /// Uses per claim (0 = unlimited). With a limit the run also stops when
    /// every use is spent.
    #[arg(long, default_value_t = 0)]
    uses: u32,
    /// Seconds each redemption may take (no retries).
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    timeout: u64,
    /// Hostile connections held on the claims port during the run, each
    /// sending a TLS ClientHello one byte a second (slowloris); honest
    /// redemptions are measured beside them.
    #[arg(long, default_value_t = 0, value_name = "N")]
    slowloris: usize,
    /// Keep the site in a one-member etcd this tool starts (its data under
    /// the temporary home, on $TMPDIR's file system, so etcd's fsyncs are
    /// real) instead of a file store. Needs etcd and curl.
    #[arg(long)]
    etcd: bool,
    /// `serve` replicas of the one site on etcd, behind haproxy in TCP
    /// mode (round robin); above 1 needs --etcd and haproxy.
    #[arg(long, default_value_t = 1, value_name = "N")]
    replicas: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Linkers {
    /// `process` up to 50 sites, `in-process` above.
    Auto,
    /// Each linking site is a `skupper-token` process (init, link create,
    /// serve).
    Process,
    /// Each linking site is an edge site in this process with its own
    /// memory store and link runtime.
    InProcess,
}

#[derive(Debug, Clone, Args)]
struct LinksArgs {
    /// Sites linking to the one serve.
    #[arg(short = 'm', long, default_value_t = 100)]
    sites: usize,
    /// How the linking sites run.
    #[arg(long, value_enum, default_value_t = Linkers::Auto)]
    linkers: Linkers,
    /// Threads redeeming the linking sites' claims (setup).
    #[arg(long, default_value_t = 8)]
    setup_threads: usize,
    /// Seconds to wait for every link to connect.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    timeout: u64,
    /// Seconds to keep the links up (heartbeats flowing) before measuring
    /// the serve's memory again.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    hold: u64,
    /// How often an in-process linking site re-reads its store, in
    /// milliseconds (serve's own default is 250).
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    linker_poll_ms: u64,
    /// Idle TCP connections held on the inter-router port before and while
    /// the sites link (they never start TLS).
    #[arg(long, default_value_t = 0, value_name = "N")]
    idle: usize,
    /// Loopback addresses the in-process sites dial from: 1 (the default)
    /// is 127.0.0.1 for all, as on one host, where serve's cap of 16
    /// unfinished handshakes per address paces the connect storm; more
    /// spreads them over 127.2.x.y, as separate machines would be, and
    /// nothing paces it.
    #[arg(long, default_value_t = 1, value_name = "N")]
    sources: usize,
}

type Res<T> = Result<T, String>;

// ---------------------------------------------------------------------------
// Stopping: Ctrl-C / SIGTERM set a flag every loop checks; guards stop the
// processes on the way out (also on a panic).
// ---------------------------------------------------------------------------

fn stop_flag() -> &'static Arc<AtomicBool> {
    static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    STOP.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

fn interrupted() -> bool {
    stop_flag().load(Ordering::Relaxed)
}

fn check_interrupted() -> Res<()> {
    if interrupted() {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

/// A child process that is stopped (SIGTERM, then SIGKILL after a grace
/// period) when the guard is dropped.
struct ProcGuard {
    what: String,
    child: Option<Child>,
}

impl ProcGuard {
    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            if stop_child(child) {
                eprintln!("{} did not stop on SIGTERM: killed it", self.what);
            }
        }
    }
}

impl Drop for ProcGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------
// The binary and the sites
// ---------------------------------------------------------------------------

/// The `skupper-token` binary: `--bin`, or built now next to this tool.
fn skupper_binary(given: Option<&Path>) -> Res<PathBuf> {
    if let Some(path) = given {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(format!("--bin {}: no such file", path.display()))
        };
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace directory")?;
    // This tool lives in <target>/<profile>/; the CLI goes to
    // <target>/release/ of the same target directory.
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let target = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot tell the target directory")?
        .to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building skupper-token (cargo build --release -p skupper-token-cli)...");
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--release", "-p", "skupper-token-cli"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(workspace)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build failed ({status})"));
    }
    let bin = target.join("release").join("skupper-token");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("built, but {} is not there", bin.display()))
    }
}

/// Runs `skupper-token` commands in one home.
struct Sk {
    bin: PathBuf,
    home: PathBuf,
    /// `--store` for every command (a file store in `home` without).
    store: Option<String>,
}

impl Sk {
    fn command(&self, ns: &str) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--home").arg(&self.home).args(["-n", ns]);
        if let Some(store) = &self.store {
            c.arg("--store").arg(store);
        }
        c.env_remove("SKUPPER_TOKEN_NAMESPACE")
            .env_remove("SKUPPER_TOKEN_HOME");
        c
    }

    fn run(&self, ns: &str, args: &[&str]) -> Res<String> {
        let out = self
            .command(ns)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        if !out.status.success() {
            return Err(format!(
                "skupper-token -n {ns} {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn site_dir(&self, ns: &str) -> PathBuf {
        self.home.join(ns)
    }
}

/// The site under load: `init` on free ports and a running `serve`.
struct Served {
    ns: String,
    guard: ProcGuard,
    log: PathBuf,
}

impl Served {
    fn pid(&self) -> u32 {
        self.guard.pid()
    }
}

fn start_serve(sk: &Sk, ns: &str) -> Res<Served> {
    let mut last = String::new();
    for attempt in 0..5 {
        check_interrupted()?;
        let ports = [free_port()?, free_port()?, free_port()?].map(|p| p.to_string());
        let force: &[&str] = if attempt > 0 { &["--force"] } else { &[] };
        let mut args = vec![
            "init",
            "--ingress-host",
            "127.0.0.1",
            "--claims-port",
            &ports[0],
            "--inter-router-port",
            &ports[1],
            "--edge-port",
            &ports[2],
        ];
        args.extend_from_slice(force);
        sk.run(ns, &args)?;
        match spawn_serve(sk.command(ns), &[], &sk.home, ns, ns)? {
            Ok(served) => return Ok(served),
            Err(exited) => last = exited,
        }
        // Most likely a port was taken between choosing and binding it.
        eprintln!("{last}; trying other ports");
    }
    Err(last)
}

/// Starts `serve` (with `serve_args`) with `command` (a `skupper-token`
/// command for site `ns`), its logs in `dir` named after `tag`, and waits
/// until it says it is running. `Ok(Err(why))`: it exited first.
fn spawn_serve(
    mut command: Command,
    serve_args: &[&str],
    dir: &Path,
    ns: &str,
    tag: &str,
) -> Res<Result<Served, String>> {
    let log = dir.join(format!("{tag}-serve.log"));
    let err_log = dir.join(format!("{tag}-serve.err"));
    let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = File::create(&err_log).map_err(|e| format!("{}: {e}", err_log.display()))?;
    let child = command
        .arg("serve")
        .args(serve_args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start serve: {e}"))?;
    let mut guard = ProcGuard {
        what: format!("serve ({tag})"),
        child: Some(child),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        check_interrupted()?;
        let text = std::fs::read_to_string(&err_log).unwrap_or_default();
        if text.contains("is running") {
            return Ok(Ok(Served {
                ns: ns.to_owned(),
                guard,
                log,
            }));
        }
        if let Some(status) = guard.exited() {
            return Ok(Err(format!("serve exited ({status}): {}", text.trim())));
        }
        if Instant::now() > deadline {
            return Err(format!("serve did not start in 20 s: {}", text.trim()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Site `ns` on `sk`'s store (etcd) with `n` serve replicas, each with its
/// own home and listening on ports of its own, and haproxy in front of
/// their claims ports on the port the site's tokens name.
fn start_replicas(sk: &Sk, ns: &str, n: usize) -> Res<(Vec<Served>, Haproxy)> {
    let store = sk.store.as_deref().ok_or("replicas need a shared store")?;
    let site_ports = [free_port()?, free_port()?, free_port()?].map(|p| p.to_string());
    sk.run(
        ns,
        &[
            "init",
            "--ingress-host",
            "127.0.0.1",
            "--claims-port",
            &site_ports[0],
            "--inter-router-port",
            &site_ports[1],
            "--edge-port",
            &site_ports[2],
        ],
    )?;
    let mut replicas = Vec::with_capacity(n);
    let mut claims = Vec::with_capacity(n);
    for i in 1..=n {
        let listen = [free_port()?, free_port()?, free_port()?].map(|p| format!("127.0.0.1:{p}"));
        let home = sk.home.join(format!("replica-{i}"));
        std::fs::create_dir_all(&home).map_err(|e| format!("{}: {e}", home.display()))?;
        let mut command = Command::new(&sk.bin);
        command
            .arg("--home")
            .arg(&home)
            .args(["-n", ns, "--store", store])
            .env_remove("SKUPPER_TOKEN_NAMESPACE")
            .env_remove("SKUPPER_TOKEN_HOME");
        let tag = format!("replica-{i}");
        let serve_args = [
            "--claims-listen",
            &listen[0],
            "--inter-router-listen",
            &listen[1],
            "--edge-listen",
            &listen[2],
        ];
        let served = spawn_serve(command, &serve_args, &sk.home, ns, &tag)?
            .map_err(|e| format!("{tag}: {e}"))?;
        replicas.push(served);
        claims.push(
            listen[0]
                .parse()
                .map_err(|e| format!("{}: {e}", listen[0]))?,
        );
    }
    let front: std::net::SocketAddr = format!("127.0.0.1:{}", site_ports[0])
        .parse()
        .map_err(|e| format!("claims port {}: {e}", site_ports[0]))?;
    let balancer = Haproxy::start(&sk.home, front, &claims)?;
    Ok((replicas, balancer))
}

/// Creates a claim token with `skupper-token token create` and reads it.
/// The served site's claims and inter-router addresses on 127.0.0.1.
fn site_addrs(sk: &Sk, ns: &str) -> Res<(std::net::SocketAddr, std::net::SocketAddr)> {
    let store = skupper_token_cli::FileStore::open(sk.site_dir(ns)).map_err(|e| e.to_string())?;
    let record = Site::open(store)
        .map_err(|e| e.to_string())?
        .record()
        .map_err(|e| e.to_string())?;
    let at = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    Ok((at(record.claims.port), at(record.inter_router.port)))
}

/// Raises this process's open-file limit to the hard limit: thousands of
/// linking sites and hostile connections each take a descriptor.
fn raise_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

/// This process's open-file limit now (`None`: unlimited).
fn file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

fn cli_claim(sk: &Sk, ns: &str, uses: u32, file: &Path) -> Res<ClaimToken> {
    let uses = uses.to_string();
    let path = file.to_string_lossy();
    sk.run(
        ns,
        &["token", "create", &path, "--uses", &uses, "--expiry", "0s"],
    )?;
    read_claim(file)
}

fn read_claim(file: &Path) -> Res<ClaimToken> {
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    match Token::decode(&bytes) {
        Ok(Token::Claim(c)) => Ok(c),
        Ok(_) => Err(format!("{} is not a claim token", file.display())),
        Err(e) => Err(format!("{}: {e}", file.display())),
    }
}

// ---------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Default)]
struct Mem {
    /// VmRSS, KiB.
    rss: u64,
    /// VmHWM (peak RSS), KiB.
    hwm: u64,
    threads: u64,
}

fn mem(pid: u32) -> Mem {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Mem {
        rss: field("VmRSS:"),
        hwm: field("VmHWM:"),
        threads: field("Threads:"),
    }
}

/// User + system CPU seconds of a process (`self` for this one).
fn cpu_seconds(pid: &str) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is
    // field 3, utime 14, stime 15.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let hz = rustix::param::clock_ticks_per_second() as f64;
    (ticks(11) + ticks(12)) as f64 / hz
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

// ---------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------

/// Percentiles of durations in microseconds.
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

fn percentiles(mut us: Vec<u64>) -> Option<Percentiles> {
    if us.is_empty() {
        return None;
    }
    us.sort_unstable();
    let at = |p: f64| us[((us.len() - 1) as f64 * p).round() as usize] as f64 / 1e3;
    Some(Percentiles {
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: *us.last().unwrap_or(&0) as f64 / 1e3,
        mean: us.iter().sum::<u64>() as f64 / us.len() as f64 / 1e3,
    })
}

fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} s", v / 1e3)
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

fn percentiles_json(p: &Option<Percentiles>) -> serde_json::Value {
    match p {
        Some(p) => json!({"p50": p.p50, "p90": p.p90, "p99": p.p99, "max": p.max, "mean": p.mean}),
        None => serde_json::Value::Null,
    }
}

/// Where the report goes: standard output, or standard error with --json.
fn report(json_mode: bool, text: &str) {
    if json_mode {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "within"
    } else {
        "OVER"
    }
}

/// Errors by kind, each with one example message.
#[derive(Default)]
struct Errors(BTreeMap<String, (u64, String)>);

impl Errors {
    fn add(&mut self, kind: String, message: String) {
        let e = self.0.entry(kind).or_insert((0, message));
        e.0 += 1;
    }

    fn merge(&mut self, other: Errors) {
        for (kind, (n, example)) in other.0 {
            let e = self.0.entry(kind).or_insert((0, example));
            e.0 += n;
        }
    }

    fn total(&self) -> u64 {
        self.0.values().map(|(n, _)| n).sum()
    }

    fn json(&self) -> serde_json::Value {
        self.0
            .iter()
            .map(|(k, (n, _))| (k.clone(), json!(n)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    fn text(&self) -> String {
        let mut s = String::new();
        for (kind, (n, example)) in &self.0 {
            let mut example = example.replace('\n', " ");
            if example.chars().count() > 160 {
                example = example.chars().take(160).collect::<String>() + "...";
            }
            let _ = writeln!(s, "  {kind}: {n} (for example: {example})");
        }
        s
    }
}

fn error_kind(e: &TransportError) -> String {
    match e {
        TransportError::Refused { status, .. } => format!("http {status}"),
        TransportError::Unreachable { .. } => "unreachable".into(),
        TransportError::Handshake { .. } => "tls handshake".into(),
        TransportError::Rejected { .. } => "rejected".into(),
        TransportError::Protocol { .. } => "protocol".into(),
        _ => "other".into(),
    }
}

// ---------------------------------------------------------------------------
// redeem
// ---------------------------------------------------------------------------

struct ClientResult {
    ok_us: Vec<u64>,
    errors: Errors,
}

fn redeem(sk: &Sk, args: &RedeemArgs, json_mode: bool) -> Res<()> {
    if args.clients == 0 || args.claims == 0 {
        return Err("--clients and --claims must be at least 1".into());
    }
    if args.replicas == 0 {
        return Err("--replicas must be at least 1".into());
    }
    if args.replicas > 1 && !args.etcd {
        return Err(
            "--replicas above 1 needs --etcd: the replicas share one site kept in etcd".into(),
        );
    }
    if args.etcd && args.slowloris > 0 {
        return Err("--slowloris is measured on a file store: leave out --etcd".into());
    }
    let etcd = match args.etcd {
        true => {
            eprintln!(
                "starting etcd (one member, data under {})...",
                sk.home.display()
            );
            Some(Etcd::start(&sk.home.join("etcd"))?)
        }
        false => None,
    };
    let sk = &Sk {
        bin: sk.bin.clone(),
        home: sk.home.clone(),
        store: etcd.as_ref().map(|e| e.store_url("bench/west")),
    };
    let (replicas, balancer) = match args.replicas {
        1 => (vec![start_serve(sk, "west")?], None),
        n => {
            let (replicas, balancer) = start_replicas(sk, "west", n)?;
            (replicas, Some(balancer))
        }
    };
    let served = &replicas[0];
    let pid = served.pid();
    let pids: Vec<u32> = replicas.iter().map(Served::pid).collect();
    let serve_cpu_now = || -> f64 { pids.iter().map(|p| cpu_seconds(&p.to_string())).sum() };
    let other_cpu_now = |pid: Option<u32>| pid.map(|p| cpu_seconds(&p.to_string()));
    let etcd_pid = etcd.as_ref().map(Etcd::pid);
    let balancer_pid = balancer.as_ref().map(Haproxy::pid);
    let placement = match (&etcd, args.replicas) {
        (None, _) => format!("serve pid {pid} on a file store"),
        (Some(e), 1) => format!("serve pid {pid} on etcd (one member, pid {})", e.pid()),
        (Some(e), n) => format!(
            "{n} serve replicas (pids {}) on etcd (one member, pid {}) behind haproxy",
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            e.pid()
        ),
    };
    let dir = sk.site_dir(&served.ns);

    // The claims.
    let setup = Instant::now();
    let tokens = sk.home.join("tokens");
    std::fs::create_dir_all(&tokens).map_err(|e| format!("{}: {e}", tokens.display()))?;
    let mut claims = Vec::with_capacity(args.claims);
    // On etcd every claim is made with the CLI (the library path opens the
    // site's directory).
    if args.claims <= 64 || sk.store.is_some() {
        for i in 0..args.claims {
            check_interrupted()?;
            let file = tokens.join(format!("claim{i}.yaml"));
            claims.push(cli_claim(sk, &served.ns, args.uses, &file)?);
        }
    } else {
        // Through the library, on the site's directory, as the CLI does it.
        let store = skupper_token_cli::FileStore::open(&dir).map_err(|e| e.to_string())?;
        let site = Site::open(store).map_err(|e| e.to_string())?;
        let options = skupper_token::site::TokenOptions::claim()
            .uses(args.uses)
            .expiry(skupper_token::duration::GoDuration::ZERO);
        let mut rng = OsRandom::new();
        for _ in 0..args.claims {
            check_interrupted()?;
            let token = site
                .create_claim_token(&options, OffsetDateTime::now_utc(), &mut rng)
                .map_err(|e| format!("creating a claim: {e}"))?;
            claims.push(token);
        }
    }
    let setup = setup.elapsed();
    let claims = Arc::new(claims);

    let limit = match (args.count, args.uses) {
        (Some(n), 0) => Some(n),
        (Some(n), u) => Some(n.min(u64::from(u) * args.claims as u64)),
        (None, 0) => None,
        (None, u) => Some(u64::from(u) * args.claims as u64),
    };
    let deadline_after = if args.count.is_some() {
        None
    } else {
        Some(Duration::from_secs_f64(args.duration.max(0.1)))
    };

    let abuse = if args.slowloris > 0 {
        let (claims_addr, _) = site_addrs(sk, &served.ns)?;
        eprintln!(
            "holding {} slowloris connections on {claims_addr} (one byte a second)...",
            args.slowloris
        );
        let abuse =
            benches::abuse::Abuse::slowloris(claims_addr, args.slowloris, Duration::from_secs(1));
        std::thread::sleep(Duration::from_secs(2));
        Some(abuse)
    } else {
        None
    };
    let before = mem(pid);
    let serve_cpu0 = serve_cpu_now();
    let etcd_cpu0 = other_cpu_now(etcd_pid);
    let balancer_cpu0 = other_cpu_now(balancer_pid);
    let etcd_metrics0 = etcd.as_ref().map(Etcd::metrics).transpose()?;
    let self_cpu0 = cpu_seconds("self");
    let what = match (args.count, args.uses) {
        (Some(n), _) => format!("{n} redemptions"),
        (None, _) => format!("{} s", args.duration),
    };
    eprintln!(
        "redeeming: {} clients, {what}, {} claims ({}), serve pid {pid}...",
        args.clients,
        args.claims,
        match args.uses {
            0 => "unlimited uses".to_owned(),
            u => format!("{u} uses each"),
        }
    );

    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = deadline_after.map(|d| start + d);
    let options = ClientOptions {
        retry_delays: Vec::new(),
        timeout: Duration::from_secs(args.timeout),
        connect_timeout: Duration::from_secs(args.timeout),
        ..ClientOptions::default()
    };
    let mut threads = Vec::new();
    for client in 0..args.clients {
        let claims = claims.clone();
        let next = next.clone();
        let done = done.clone();
        let failed = failed.clone();
        let transport = RedeemClient::new(options.clone());
        let thread = std::thread::Builder::new()
            .name(format!("client-{client}"))
            .spawn(move || {
                // One attempt per redemption (no retry delays), on this
                // thread's own runtime.
                let runtime = client_runtime();
                // Each client is one redeeming site: its id becomes the
                // certificates' common name.
                let site_id = format!("10ad0000-0000-4000-8000-{client:012x}");
                let mut result = ClientResult {
                    ok_us: Vec::new(),
                    errors: Errors::default(),
                };
                loop {
                    if interrupted() || deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if limit.is_some_and(|l| n >= l) {
                        break;
                    }
                    let claim = &claims[(n % claims.len() as u64) as usize];
                    let request = RedeemRequest {
                        claim: claim.name.clone(),
                        password: claim.password.expose().as_bytes().to_vec(),
                        site_id: site_id.clone(),
                        site_version: VERSION.into(),
                    };
                    let t = Instant::now();
                    let outcome =
                        runtime.block_on(transport.redeem(&claim.url, &claim.ca_pem, &request));
                    let us = t.elapsed().as_micros() as u64;
                    match outcome {
                        Ok(_) => {
                            result.ok_us.push(us);
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            result.errors.add(error_kind(&e), e.to_string());
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                result
            })
            .map_err(|e| format!("cannot start a client thread: {e}"))?;
        threads.push(thread);
    }

    // Progress, and the serve's RSS as seen while loaded.
    let mut observed_max_rss = before.rss;
    let mut last_report = Instant::now();
    while threads.iter().any(|t| !t.is_finished()) {
        std::thread::sleep(Duration::from_millis(100));
        observed_max_rss = observed_max_rss.max(mem(pid).rss);
        if last_report.elapsed() >= Duration::from_secs(2) {
            last_report = Instant::now();
            eprintln!(
                "  {:5.1} s: {} redeemed, {} failed, serve RSS {}",
                start.elapsed().as_secs_f64(),
                done.load(Ordering::Relaxed),
                failed.load(Ordering::Relaxed),
                mib(mem(pid).rss)
            );
        }
    }
    let mut ok_us = Vec::new();
    let mut errors = Errors::default();
    for t in threads {
        let r = t.join().map_err(|_| "a client thread panicked")?;
        ok_us.extend(r.ok_us);
        errors.merge(r.errors);
    }
    let elapsed = start.elapsed().as_secs_f64();
    check_interrupted()?;
    let after = mem(pid);
    let serve_cpu = serve_cpu_now() - serve_cpu0;
    let etcd_cpu = other_cpu_now(etcd_pid).zip(etcd_cpu0).map(|(a, b)| a - b);
    let balancer_cpu = other_cpu_now(balancer_pid)
        .zip(balancer_cpu0)
        .map(|(a, b)| a - b);
    let etcd_metrics: Option<EtcdMetrics> = match (&etcd, &etcd_metrics0) {
        (Some(e), Some(before)) => Some(e.metrics()?.since(before)),
        _ => None,
    };
    let self_cpu = cpu_seconds("self") - self_cpu0;

    let abuse_stats = abuse.as_ref().map(benches::abuse::Abuse::stats);
    drop(abuse);
    let ok = ok_us.len() as u64;
    let rate = ok as f64 / elapsed;
    let lat = percentiles(ok_us);
    let success = if ok + errors.total() > 0 {
        ok as f64 / (ok + errors.total()) as f64
    } else {
        0.0
    };
    let rate_ok = rate >= 1000.0;
    let p99_ok = lat.as_ref().is_some_and(|l| l.p99 <= 50.0);
    let cpu_per_redemption_ms = (ok > 0).then(|| serve_cpu * 1e3 / ok as f64);
    let cpu_ok = cpu_per_redemption_ms.is_some_and(|ms| ms <= CPU_PER_REDEMPTION_MS_MAX);

    let mut t = String::new();
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "redeem-load: {} clients, {} claims ({}), {:.1} s, {placement} (setup {:.1} s)",
        args.clients,
        args.claims,
        match args.uses {
            0 => "unlimited uses".to_owned(),
            u => format!("{u} uses each"),
        },
        elapsed,
        setup.as_secs_f64()
    );
    let _ = writeln!(t);
    let _ = writeln!(t, "| measure | value | budget | |");
    let _ = writeln!(t, "| --- | ---: | ---: | --- |");
    let _ = writeln!(
        t,
        "| redemptions | {ok} ok, {} failed | | |",
        errors.total()
    );
    let _ = writeln!(
        t,
        "| redemptions/s | {rate:.0} | >= 1000 | {} |",
        verdict(rate_ok)
    );
    if let Some(l) = &lat {
        let _ = writeln!(t, "| latency p50 | {} | | |", ms(l.p50));
        let _ = writeln!(t, "| latency p90 | {} | | |", ms(l.p90));
        let _ = writeln!(
            t,
            "| latency p99 | {} | <= 50 ms | {} |",
            ms(l.p99),
            verdict(p99_ok)
        );
        let _ = writeln!(t, "| latency max | {} | | |", ms(l.max));
        let _ = writeln!(t, "| latency mean | {} | | |", ms(l.mean));
    }
    if let Some(a) = &abuse_stats {
        let _ = writeln!(t, "| slowloris connections | {} | | |", a.summary());
        let _ = writeln!(
            t,
            "| honest redemptions that succeeded | {:.1}% | >= 95% | {} |",
            success * 100.0,
            verdict(success >= 0.95)
        );
        if let Some(l) = &lat {
            let _ = writeln!(
                t,
                "| honest latency p50 under slowloris | {} | < 1 s | {} |",
                ms(l.p50),
                verdict(l.p50 < 1000.0)
            );
        }
    }
    let one = if args.replicas > 1 {
        " (replica 1)"
    } else {
        ""
    };
    let _ = writeln!(
        t,
        "| serve RSS before load{one} | {} | | |",
        mib(before.rss)
    );
    let _ = writeln!(
        t,
        "| serve peak RSS (VmHWM){one} | {} | | |",
        mib(after.hwm)
    );
    let _ = writeln!(t, "| serve RSS after load{one} | {} | | |", mib(after.rss));
    let _ = writeln!(
        t,
        "| serve threads after load{one} | {} | | |",
        after.threads
    );
    let per = |cpu: f64| {
        if ok > 0 {
            format!(" ({:.2} ms per redemption)", cpu * 1e3 / ok as f64)
        } else {
            String::new()
        }
    };
    let _ = writeln!(
        t,
        "| serve CPU{} | {serve_cpu:.2} s{} | <= 0.6 ms per redemption | {} |",
        match args.replicas {
            1 => String::new(),
            n => format!(" ({n} replicas together)"),
        },
        per(serve_cpu),
        verdict(cpu_ok)
    );
    if let Some(cpu) = etcd_cpu {
        let _ = writeln!(t, "| etcd CPU | {cpu:.2} s{} | | |", per(cpu));
    }
    if let Some(cpu) = balancer_cpu {
        let _ = writeln!(t, "| haproxy CPU | {cpu:.2} s{} | | |", per(cpu));
    }
    if let (Some(m), true) = (&etcd_metrics, ok > 0) {
        let n = ok as f64;
        let _ = writeln!(
            t,
            "| etcd WAL fsyncs | {:.0} ({:.2} per redemption) | | |",
            m.wal_fsyncs,
            m.wal_fsyncs / n
        );
        let _ = writeln!(
            t,
            "| etcd requests | {:.0} ({:.2} per redemption: {}) | | |",
            m.total_requests(),
            m.total_requests() / n,
            m.requests_per(n)
        );
    }
    let _ = writeln!(
        t,
        "| client CPU (this process) | {self_cpu:.2} s{} | | |",
        per(self_cpu)
    );
    if errors.total() > 0 {
        let _ = writeln!(t);
        let _ = writeln!(t, "errors by kind:");
        t.push_str(&errors.text());
    }
    if let Ok(threads) = std::thread::available_parallelism() {
        let _ = writeln!(
            t,
            "\n(clients and serve share this machine's {threads} CPUs; serve log: {})",
            served.log.display()
        );
    }
    report(json_mode, &t);
    if json_mode {
        let line = json!({
            "mode": "redeem",
            "clients": args.clients,
            "claims": args.claims,
            "uses": args.uses,
            "seconds": elapsed,
            "redemptions": ok,
            "errors": errors.json(),
            "redemptions_per_s": rate,
            "latency_ms": percentiles_json(&lat),
            "serve": {
                "pid": pid,
                "rss_before_kib": before.rss,
                "peak_rss_kib": after.hwm,
                "rss_after_kib": after.rss,
                "observed_max_rss_kib": observed_max_rss,
                "threads_after": after.threads,
                "cpu_s": serve_cpu,
            },
            "client_cpu_s": self_cpu,
            "store": if args.etcd { "etcd" } else { "file" },
            "replicas": args.replicas,
            "etcd": etcd_metrics.as_ref().map(|m| json!({
                "cpu_s": etcd_cpu,
                "wal_fsyncs": m.wal_fsyncs,
                "backend_commits": m.backend_commits,
                "requests": m.requests,
            })),
            "haproxy_cpu_s": balancer_cpu,
            "slowloris": abuse_stats.map(|a| json!({
                "connections": args.slowloris,
                "opened": a.opened,
                "closed_by_server": a.closed_by_server,
                "connect_errors": a.connect_errors,
                "honest_success_ratio": success,
            })),
            "budget": {
                "redemptions_per_s_min": 1000,
                "p99_ms_max": 50,
                "rate_within": rate_ok,
                "p99_within": p99_ok,
                "serve_cpu_ms_per_redemption_max": CPU_PER_REDEMPTION_MS_MAX,
                "serve_cpu_ms_per_redemption": cpu_per_redemption_ms,
                "cpu_within": cpu_ok,
            },
        });
        println!("{line}");
    }
    drop(replicas);
    drop(balancer);
    drop(etcd);
    Ok(())
}

// ---------------------------------------------------------------------------
// links
// ---------------------------------------------------------------------------

/// Issue 12's target: live links on one serve...
const TARGET_LINKS: usize = 10_000;
/// ...within this RSS (KiB)...
const RSS_KIB_MAX: u64 = 150 * 1024;
/// ...and this many threads.
const THREADS_MAX: u64 = 16;
/// Issue 12's target: serve's CPU per durable HTTPS redemption.
const CPU_PER_REDEMPTION_MS_MAX: f64 = 0.6;

/// The loopback address in-process linking site `i` dials from:
/// 127.2.x.y, y from 1 to 250.
fn linker_address(i: usize) -> std::net::IpAddr {
    let (x, y) = (i / 250, i % 250 + 1);
    std::net::Ipv4Addr::new(127, 2, (x % 256) as u8, y as u8).into()
}

/// A reason with its numbers (addresses, durations, ids) left out, to
/// count reasons of one kind together.
fn without_numbers(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    let mut in_number = false;
    for c in reason.chars() {
        if c.is_ascii_hexdigit() && (c.is_ascii_digit() || in_number)
            || (in_number && ".:-".contains(c))
        {
            if !in_number {
                out.push('#');
                in_number = true;
            }
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

/// When each linking site started and when its link first connected.
struct Timeline {
    started: Vec<Option<Instant>>,
    connected: Vec<Option<Instant>>,
    /// Dial failures before the first connection (retried with backoff).
    retries: u64,
    /// Disconnections after connecting.
    flaps: u64,
    /// Why they disconnected (the reasons with their numbers left out).
    flap_reasons: Errors,
}

impl Timeline {
    fn new(m: usize) -> Timeline {
        Timeline {
            started: vec![None; m],
            connected: vec![None; m],
            retries: 0,
            flaps: 0,
            flap_reasons: Errors::default(),
        }
    }

    fn connected_count(&self) -> usize {
        self.connected.iter().filter(|c| c.is_some()).count()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the serve says about its incoming links (its control socket).
fn serve_incoming(sk: &Sk, ns: &str) -> Option<usize> {
    match control::ask(&sk.site_dir(ns), &Request::Live, Duration::from_secs(10)) {
        Ok(Some(Response::Live(state))) => Some(state.incoming.len()),
        _ => None,
    }
}

/// The linking sites, kept alive until the measurements are done.
enum LinkerSet {
    Processes(Vec<ProcGuard>),
    /// Their link runtimes, all on one tokio runtime of this process.
    InProcess(tokio::runtime::Runtime, Vec<LinkRuntime>),
}

fn links(sk: &Sk, args: &LinksArgs, json_mode: bool) -> Res<()> {
    let m = args.sites;
    if m == 0 || m > 10_000 {
        return Err("--sites must be from 1 to 10000".into());
    }
    if !(1..=10_000).contains(&args.sources) {
        return Err("--sources must be from 1 to 10000".into());
    }
    let in_process = match args.linkers {
        Linkers::Auto => m > 50,
        Linkers::Process => false,
        Linkers::InProcess => true,
    };
    let mut served = start_serve(sk, "west")?;
    let pid = served.pid();
    // Let the serve settle (its first reload, the control socket).
    std::thread::sleep(Duration::from_millis(500));
    // A descriptor per idle connection and per in-process link, and some
    // to spare (the runtime, files, process linkers' pipes).
    let needed = (args.idle + m + 256) as u64;
    if let Some(limit) = file_limit().filter(|l| *l < needed) {
        eprintln!(
            "warning: this process may open {limit} files, fewer than the {needed} \
             these {m} sites and {} idle connections need (raise the hard limit: ulimit -Hn)",
            args.idle
        );
    }
    let idle = if args.idle > 0 {
        let (_, inter_router) = site_addrs(sk, &served.ns)?;
        eprintln!(
            "holding {} idle TCP connections on the inter-router port {inter_router}...",
            args.idle
        );
        let idle = benches::abuse::Abuse::idle(inter_router, args.idle);
        // All of them open before the first site dials.
        let ramp = Instant::now();
        if !idle.wait_ramped(Duration::from_secs(30)) {
            eprintln!(
                "not every idle connection opened within 30 s: {}",
                idle.stats().summary()
            );
        }
        eprintln!(
            "idle connections opened in {:.1} s: {}",
            ramp.elapsed().as_secs_f64(),
            idle.stats().summary()
        );
        Some(idle)
    } else {
        None
    };
    let before = mem(pid);
    let token_file = sk.home.join("links-claim.yaml");
    let uses = u32::try_from(m).map_err(|_| "too many sites")?;
    cli_claim(sk, &served.ns, uses, &token_file)?;
    let token_bytes =
        std::fs::read(&token_file).map_err(|e| format!("{}: {e}", token_file.display()))?;
    eprintln!(
        "linking {m} sites ({}) to serve pid {pid} (RSS {})...",
        if in_process {
            "edge sites in this process"
        } else {
            "edge sites, each a skupper-token process"
        },
        mib(before.rss)
    );

    // Setup: each linking site redeems one use of the claim over HTTPS.
    let setup = Instant::now();
    let threads = args.setup_threads.clamp(1, 64);
    let names: Vec<String> = (0..m).map(|i| format!("l{i:05}")).collect();
    let sites: Vec<Mutex<Option<Arc<Site<MemoryStore>>>>> =
        (0..m).map(|_| Mutex::new(None)).collect();
    let setup_errors = Mutex::new(Errors::default());
    std::thread::scope(|s| {
        for t in 0..threads {
            let (names, sites, setup_errors, token_bytes, token_file) =
                (&names, &sites, &setup_errors, &token_bytes, &token_file);
            s.spawn(move || {
                let transport = RedeemClient::default();
                let runtime = client_runtime();
                for i in (t..m).step_by(threads) {
                    if interrupted() {
                        return;
                    }
                    let result = if in_process {
                        in_process_site(&names[i], token_bytes, &runtime, &transport)
                            .map(|site| *lock(&sites[i]) = Some(Arc::new(site)))
                    } else {
                        sk.run(&names[i], &["init", "--mode", "edge"])
                            .and_then(|_| {
                                sk.run(
                                    &names[i],
                                    &["link", "create", &token_file.to_string_lossy()],
                                )
                            })
                            .map(|_| ())
                    };
                    if let Err(e) = result {
                        lock(setup_errors).add("setup".into(), e);
                    }
                }
            });
        }
    });
    check_interrupted()?;
    let setup = setup.elapsed();
    let setup_errors = setup_errors
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if setup_errors.total() > 0 {
        eprint!("setup failures:\n{}", setup_errors.text());
    }

    // Start them all, and wait for every link to connect.
    let timeline = Arc::new(Mutex::new(Timeline::new(m)));
    let linker_set = if in_process {
        let options = RuntimeOptions {
            poll: Duration::from_millis(args.linker_poll_ms.max(10)),
            ..RuntimeOptions::default()
        };
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
        let mut runtimes = Vec::with_capacity(m);
        for (i, slot) in sites.iter().enumerate() {
            check_interrupted()?;
            let Some(site) = lock(slot).take() else {
                continue;
            };
            let tl = timeline.clone();
            lock(&tl).started[i] = Some(Instant::now());
            // --sources: one address for all, or spread over many.
            let options = RuntimeOptions {
                dial_from: (args.sources > 1).then(|| linker_address(i % args.sources)),
                ..options.clone()
            };
            let runtime = LinkRuntime::start(tokio.handle(), site, options, move |event| {
                let now = Instant::now();
                let mut tl = lock(&tl);
                match event {
                    LinkEvent::LinkConnected { .. } if tl.connected[i].is_none() => {
                        tl.connected[i] = Some(now);
                    }
                    LinkEvent::LinkDisconnected { .. } if tl.connected[i].is_none() => {
                        tl.retries += 1;
                    }
                    LinkEvent::LinkDisconnected { reason, .. } => {
                        tl.flaps += 1;
                        tl.flap_reasons.add(without_numbers(reason), reason.clone());
                    }
                    _ => {}
                }
            })
            .map_err(|e| format!("starting the link runtime of {}: {e}", names[i]))?;
            runtimes.push(runtime);
        }
        LinkerSet::InProcess(tokio, runtimes)
    } else {
        let (tx, rx) = mpsc::channel::<(usize, bool, Instant)>();
        let mut guards = Vec::with_capacity(m);
        for (i, name) in names.iter().enumerate() {
            check_interrupted()?;
            if !sk.site_dir(name).join("link").is_dir() {
                continue;
            }
            let err = File::create(sk.home.join(format!("{name}-serve.err")))
                .map_err(|e| format!("serve log: {e}"))?;
            lock(&timeline).started[i] = Some(Instant::now());
            let mut child = sk
                .command(name)
                .arg("serve")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(err)
                .spawn()
                .map_err(|e| format!("cannot start serve for {name}: {e}"))?;
            let stdout = child.stdout.take();
            guards.push(ProcGuard {
                what: format!("serve ({name})"),
                child: Some(child),
            });
            let tx = tx.clone();
            if let Some(stdout) = stdout {
                std::thread::spawn(move || {
                    // Every line is read (so the process never blocks on a
                    // full pipe); the link's log lines are timed.
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        let now = Instant::now();
                        if line.contains("link link1 connected to site") {
                            let _ = tx.send((i, true, now));
                        } else if line.contains("link link1 not connected") {
                            let _ = tx.send((i, false, now));
                        }
                    }
                });
            }
        }
        drop(tx);
        let tl = timeline.clone();
        std::thread::spawn(move || {
            for (i, up, at) in rx {
                let mut tl = lock(&tl);
                match (up, tl.connected[i].is_some()) {
                    (true, false) => tl.connected[i] = Some(at),
                    (true, true) => {}
                    (false, false) => tl.retries += 1,
                    (false, true) => tl.flaps += 1,
                }
            }
        });
        LinkerSet::Processes(guards)
    };
    let started_count = lock(&timeline).started.iter().flatten().count();
    let wait_deadline = Instant::now() + Duration::from_secs(args.timeout);
    let first_start = lock(&timeline).started.iter().flatten().min().copied();
    let mut last_report = Instant::now();
    let mut peak_during = before.rss;
    loop {
        check_interrupted()?;
        let connected = lock(&timeline).connected_count();
        peak_during = peak_during.max(mem(pid).rss);
        if connected >= started_count || Instant::now() >= wait_deadline {
            break;
        }
        if let Some(status) = served.guard.exited() {
            return Err(format!(
                "serve exited ({status}) while the sites were linking"
            ));
        }
        if last_report.elapsed() >= Duration::from_secs(2) {
            last_report = Instant::now();
            eprintln!(
                "  {connected}/{started_count} connected, serve RSS {}",
                mib(mem(pid).rss)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let connected_now = mem(pid);
    let serve_says_connected = serve_incoming(sk, &served.ns);

    // Hold: heartbeats flow; then measure again.
    let hold_until = Instant::now() + Duration::from_secs(args.hold);
    while Instant::now() < hold_until {
        check_interrupted()?;
        peak_during = peak_during.max(mem(pid).rss);
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = mem(pid);
    let serve_says_after_hold = serve_incoming(sk, &served.ns);

    let (connect_us, all_connected, connected, retries, flaps) = {
        let tl = lock(&timeline);
        let connect_us: Vec<u64> = tl
            .started
            .iter()
            .zip(&tl.connected)
            .filter_map(|(s, c)| Some(c.as_ref()?.duration_since(*s.as_ref()?).as_micros() as u64))
            .collect();
        let last = tl.connected.iter().flatten().max().copied();
        let all = match (first_start, last) {
            (Some(f), Some(l)) if tl.connected_count() >= started_count => {
                Some(l.duration_since(f).as_secs_f64())
            }
            _ => None,
        };
        (connect_us, all, tl.connected_count(), tl.retries, tl.flaps)
    };
    let flap_reasons = std::mem::take(&mut lock(&timeline).flap_reasons);
    let connect = percentiles(connect_us);
    let incoming_after = serve_says_after_hold.unwrap_or(connected);
    let per_link_kib = if incoming_after > 0 {
        (after.rss as f64 - before.rss as f64) / incoming_after as f64
    } else {
        0.0
    };
    let projected = before.rss as f64 + per_link_kib * TARGET_LINKS as f64;
    let projected_ok = projected <= RSS_KIB_MAX as f64;
    let at_target = incoming_after >= TARGET_LINKS;
    let rss_ok = if at_target {
        after.rss <= RSS_KIB_MAX
    } else {
        projected_ok
    };
    let all_ok = connected == started_count && incoming_after == started_count;
    let threads_ok = after.threads <= THREADS_MAX;
    let flaps_ok = flaps == 0;

    let mut t = String::new();
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "redeem-load links: {m} sites ({}) linked to serve pid {pid}; setup (init + claim redemption) {:.1} s",
        if in_process {
            "edge sites in this process, one link runtime each"
        } else {
            "edge sites, one skupper-token serve process each"
        },
        setup.as_secs_f64()
    );
    let _ = writeln!(t);
    let _ = writeln!(t, "| measure | value | budget | |");
    let _ = writeln!(t, "| --- | ---: | ---: | --- |");
    let _ = writeln!(
        t,
        "| links connected (linking side) | {connected}/{started_count} | all | {} |",
        verdict(all_ok)
    );
    let show = |v: Option<usize>| v.map_or("?".to_owned(), |v| v.to_string());
    let _ = writeln!(
        t,
        "| incoming links (serve's control socket) | {} when all connected, {} after {} s | | |",
        show(serve_says_connected),
        show(serve_says_after_hold),
        args.hold
    );
    let _ = writeln!(
        t,
        "| time to all connected | {} | | |",
        all_connected.map_or("not all connected".to_owned(), |s| format!("{s:.2} s"))
    );
    if let Some(c) = &connect {
        let _ = writeln!(t, "| connect time p50 | {} | | |", ms(c.p50));
        let _ = writeln!(t, "| connect time p99 | {} | | |", ms(c.p99));
        let _ = writeln!(t, "| connect time max | {} | | |", ms(c.max));
    }
    let _ = writeln!(t, "| dial retries before connecting | {retries} | | |");
    let _ = writeln!(
        t,
        "| disconnects after connecting (incl. the {} s hold) | {flaps} | 0 | {} |",
        args.hold,
        verdict(flaps_ok)
    );
    let _ = writeln!(t, "| serve RSS before links | {} | | |", mib(before.rss));
    let _ = writeln!(
        t,
        "| serve RSS when all connected | {} | | |",
        mib(connected_now.rss)
    );
    let _ = writeln!(
        t,
        "| serve RSS after {} s held | {} | | |",
        args.hold,
        mib(after.rss)
    );
    let _ = writeln!(t, "| serve peak RSS (VmHWM) | {} | | |", mib(after.hwm));
    let _ = writeln!(t, "| serve RSS per link | {:.1} KiB | | |", per_link_kib);
    let _ = writeln!(
        t,
        "| serve threads | {} | <= {THREADS_MAX} | {} |",
        after.threads,
        verdict(threads_ok)
    );
    if let Some(idle) = &idle {
        let stats = idle.stats();
        let _ = writeln!(
            t,
            "| idle TCP connections on the inter-router port | {} | a new site still links | {} |",
            stats.summary(),
            verdict(connected == started_count && connected > 0)
        );
    }
    drop(idle);
    if at_target {
        let _ = writeln!(
            t,
            "| serve RSS with {incoming_after} live links | {} | <= 150 MiB | {} |",
            mib(after.rss),
            verdict(rss_ok)
        );
    } else {
        let _ = writeln!(
            t,
            "| serve RSS projected to {TARGET_LINKS} links | {} | <= 150 MiB | {} |",
            mib(projected as u64),
            verdict(rss_ok)
        );
    }
    if setup_errors.total() > 0 {
        let _ = writeln!(t, "\nsetup failures:");
        t.push_str(&setup_errors.text());
    }
    if flap_reasons.total() > 0 {
        let _ = writeln!(t);
        let _ = writeln!(t, "disconnects by reason (the linking side's words):");
        t.push_str(&flap_reasons.text());
    }
    let _ = writeln!(t, "\n(serve log: {})", served.log.display());
    report(json_mode, &t);
    if json_mode {
        let line = json!({
            "mode": "links",
            "sites": m,
            "linkers": if in_process { "in-process" } else { "process" },
            "setup_s": setup.as_secs_f64(),
            "started": started_count,
            "connected": connected,
            "serve_incoming_when_connected": serve_says_connected,
            "serve_incoming_after_hold": serve_says_after_hold,
            "all_connected_s": all_connected,
            "connect_ms": percentiles_json(&connect),
            "dial_retries": retries,
            "disconnects_after_connect": flaps,
            "hold_s": args.hold,
            "serve": {
                "pid": pid,
                "rss_before_kib": before.rss,
                "rss_connected_kib": connected_now.rss,
                "rss_after_hold_kib": after.rss,
                "peak_rss_kib": after.hwm,
                "observed_max_rss_kib": peak_during,
                "rss_per_link_kib": per_link_kib,
                "threads": after.threads,
            },
            "budget": {
                "links": TARGET_LINKS,
                "rss_kib_max": RSS_KIB_MAX,
                "rss_projected_kib": projected,
                "threads_max": THREADS_MAX,
                "all_connected": all_ok,
                "rss_within": rss_ok,
                "threads_within": threads_ok,
                "no_disconnect": flaps_ok,
                "within": all_ok && rss_ok && threads_ok && flaps_ok,
            },
            "setup_errors": setup_errors.json(),
        });
        println!("{line}");
    }

    // Stop the linking sites first (they say goodbye), then the serve.
    let stopping = Instant::now();
    match linker_set {
        LinkerSet::InProcess(tokio, runtimes) => {
            tokio.block_on(async {
                let mut stopping = tokio::task::JoinSet::new();
                for r in runtimes {
                    stopping.spawn(async move { r.shutdown().await });
                }
                while stopping.join_next().await.is_some() {}
            });
        }
        LinkerSet::Processes(guards) => {
            std::thread::scope(|s| {
                for mut g in guards {
                    s.spawn(move || g.stop());
                }
            });
        }
    }
    eprintln!(
        "stopped the linking sites in {:.1} s",
        stopping.elapsed().as_secs_f64()
    );
    drop(served);
    Ok(())
}

/// An edge site in memory that has redeemed its claim (over HTTPS, from
/// the serve) and holds the link's credentials.
fn in_process_site(
    name: &str,
    token: &[u8],
    runtime: &tokio::runtime::Runtime,
    client: &RedeemClient,
) -> Res<Site<MemoryStore>> {
    let now = OffsetDateTime::now_utc();
    let config = SiteConfig::new(name).mode(SiteMode::Edge);
    let site = Site::create(MemoryStore::new(), &config, now, &mut OsRandom::new())
        .map_err(|e| format!("creating site {name}: {e}"))?;
    let created = site
        .create_link(token, &LinkOptions::default(), now, &mut OsRandom::new())
        .map_err(|e| format!("{name}: link create: {e}"))?;
    if let Some(r) = &created.redemption {
        let answer = runtime.block_on(client.redeem(&r.url, &r.ca_pem, &r.request));
        site.handle_redemption(r, answer, OffsetDateTime::now_utc())
            .map_err(|e| format!("{name}: link create: {e}"))?;
    }
    Ok(site)
}

/// A client thread's own single-threaded runtime for the hyper client.
fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread tokio runtime starts")
}

// ---------------------------------------------------------------------------

fn run(cli: &Cli) -> Res<()> {
    raise_file_limit();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop_flag().clone())
            .map_err(|e| format!("cannot install the signal handlers: {e}"))?;
    }
    let bin = skupper_binary(cli.bin.as_deref())?;
    let home = tempfile::Builder::new()
        .prefix("redeem-load.")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary home: {e}"))?;
    let sk = Sk {
        bin,
        home: home.path().to_path_buf(),
        store: None,
    };
    let result = match &cli.mode {
        None => redeem(&sk, &cli.redeem, cli.json),
        Some(Mode::Redeem(args)) => redeem(&sk, args, cli.json),
        Some(Mode::Links(args)) => links(&sk, args, cli.json),
    };
    if cli.keep {
        let kept = home.keep();
        eprintln!("kept {}", kept.display());
    }
    result
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("redeem-load: {e}");
            ExitCode::FAILURE
        }
    }
}
