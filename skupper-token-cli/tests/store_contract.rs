//! The `Store` contract, one suite run against every store: `MemoryStore`,
//! `FileStore` and `EtcdStore` (on a real one-member etcd started by each
//! test). One generic function per property, and one test per store per
//! property (the `contract!` macro).
// The CLI is where the OS is allowed in: its tests use files, threads,
// clocks and processes.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "common/etcd.rs"]
mod etcd;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use skupper_token::records::{IssuedBatch, IssuedCert};
use skupper_token::site::{IssuedRecord, IssuedVia};
use skupper_token::store::{Cas, Key, MemoryStore, Record, RecordKind, Store, StoreError};
use skupper_token_cli::etcd_store::{EtcdOptions, EtcdStore, EtcdUrl};
use skupper_token_cli::file_store::FileStore;
use time::macros::datetime;
use time::OffsetDateTime;

fn now() -> OffsetDateTime {
    datetime!(2025-06-01 12:00 UTC)
}

/// A store under test and whatever keeps it alive (a directory, an etcd).
struct Fixture {
    store: Arc<dyn Store>,
    _keep: Box<dyn std::any::Any>,
    /// Whether the store refuses names that are not safe file names
    /// (`MemoryStore` keeps any name).
    checks_names: bool,
}

fn memory() -> Fixture {
    Fixture {
        store: Arc::new(MemoryStore::new()),
        _keep: Box::new(()),
        checks_names: false,
    }
}

fn file() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path().join("site")).unwrap();
    Fixture {
        store: Arc::new(store),
        _keep: Box::new(dir),
        checks_names: true,
    }
}

fn etcd() -> Fixture {
    let server = etcd::Etcd::start();
    let url = EtcdUrl::parse(&server.store_url("/contract/site")).unwrap();
    let store = EtcdStore::open(&url).unwrap();
    Fixture {
        store: Arc::new(store),
        _keep: Box::new(server),
        checks_names: true,
    }
}

/// An issued-certificate record named `serial` whose common name is
/// `value` (a record whose content the tests can change and read back).
fn issued(serial: &str, value: &str) -> Record {
    Record::Issued(IssuedRecord {
        serial: serial.into(),
        common_name: value.into(),
        via: IssuedVia::Claim {
            name: "some-claim".into(),
        },
        ca_generation: 1,
        issued_at: now(),
        not_after: now() + time::Duration::days(365),
    })
}

fn batch(claim: &str) -> Record {
    Record::ClaimIssued(IssuedBatch {
        claim: claim.into(),
        grant: None,
        ca_generation: 1,
        certs: vec![IssuedCert {
            serial: "800B".into(),
            common_name: "0b5c8f2e-7c8e-4a43-9b1a-1d0a0e6c9d11".into(),
            issued_at: now(),
            not_after: now() + time::Duration::days(365),
        }],
    })
}

fn key(name: &str) -> Key {
    Key::new(RecordKind::Issued, name)
}

fn value_of(store: &dyn Store, key: &Key) -> String {
    match store.load(key).unwrap().map(|v| v.record) {
        Some(Record::Issued(r)) => r.common_name,
        other => panic!("{key}: {other:?}"),
    }
}

fn load_missing(f: Fixture) {
    let s = &*f.store;
    assert_eq!(s.load(&key("800A")).unwrap(), None);
    assert_eq!(s.load(&Key::site()).unwrap(), None);
    assert_eq!(s.names(RecordKind::Issued).unwrap(), Vec::<String>::new());
    assert_eq!(s.list(RecordKind::Claim).unwrap(), vec![]);
    assert!(!s.delete(&key("800A")).unwrap());
}

fn create(f: Fixture) {
    let s = &*f.store;
    let record = issued("800A", "one");
    let Cas::Done(Some(v)) = s
        .compare_and_swap(&key("800A"), None, Some(record.clone()))
        .unwrap()
    else {
        panic!("create was not done");
    };
    assert!(v > 0);
    let loaded = s.load(&key("800A")).unwrap().unwrap();
    assert_eq!((loaded.version, loaded.record), (v, record));
}

fn create_exists(f: Fixture) {
    let s = &*f.store;
    let Cas::Done(Some(v)) = s
        .compare_and_swap(&key("800A"), None, Some(issued("800A", "one")))
        .unwrap()
    else {
        panic!("create was not done");
    };
    assert_eq!(
        s.compare_and_swap(&key("800A"), None, Some(issued("800A", "two")))
            .unwrap(),
        Cas::Conflict(Some(v))
    );
    assert_eq!(value_of(s, &key("800A")), "one");
}

fn cas_right_and_stale(f: Fixture) {
    let s = &*f.store;
    let k = key("800A");
    let Cas::Done(Some(v1)) = s
        .compare_and_swap(&k, None, Some(issued("800A", "one")))
        .unwrap()
    else {
        panic!("create was not done");
    };
    let Cas::Done(Some(v2)) = s
        .compare_and_swap(&k, Some(v1), Some(issued("800A", "two")))
        .unwrap()
    else {
        panic!("update was not done");
    };
    // Versions are opaque but grow with every write of a key.
    assert!(v2 > v1, "{v2} after {v1}");
    assert_eq!(
        s.compare_and_swap(&k, Some(v1), Some(issued("800A", "stale")))
            .unwrap(),
        Cas::Conflict(Some(v2))
    );
    assert_eq!(value_of(s, &k), "two");
    assert_eq!(s.load(&k).unwrap().unwrap().version, v2);
    // An update of a record that does not exist.
    assert_eq!(
        s.compare_and_swap(&key("800B"), Some(v2), Some(issued("800B", "x")))
            .unwrap(),
        Cas::Conflict(None)
    );
    assert_eq!(s.load(&key("800B")).unwrap(), None);
}

fn delete_with_version(f: Fixture) {
    let s = &*f.store;
    let k = key("800A");
    let Cas::Done(Some(v)) = s
        .compare_and_swap(&k, None, Some(issued("800A", "one")))
        .unwrap()
    else {
        panic!("create was not done");
    };
    let Cas::Done(Some(v2)) = s
        .compare_and_swap(&k, Some(v), Some(issued("800A", "two")))
        .unwrap()
    else {
        panic!("update was not done");
    };
    assert_eq!(
        s.compare_and_swap(&k, Some(v), None).unwrap(),
        Cas::Conflict(Some(v2))
    );
    assert_eq!(value_of(s, &k), "two");
    assert_eq!(
        s.compare_and_swap(&k, Some(v2), None).unwrap(),
        Cas::Done(None)
    );
    assert_eq!(s.load(&k).unwrap(), None);
    assert_eq!(
        s.compare_and_swap(&k, Some(v2), None).unwrap(),
        Cas::Conflict(None)
    );
    // "Delete if absent" of an absent record is done; of a present one, a
    // conflict.
    assert_eq!(s.compare_and_swap(&k, None, None).unwrap(), Cas::Done(None));
    let Cas::Done(Some(v3)) = s
        .compare_and_swap(&k, None, Some(issued("800A", "three")))
        .unwrap()
    else {
        panic!("create again was not done");
    };
    assert_eq!(
        s.compare_and_swap(&k, None, None).unwrap(),
        Cas::Conflict(Some(v3))
    );
    // The unconditional delete says whether there was a record.
    assert!(s.delete(&k).unwrap());
    assert!(!s.delete(&k).unwrap());
    assert_eq!(s.load(&k).unwrap(), None);
}

fn names_and_list_per_kind(f: Fixture) {
    let s = &*f.store;
    for name in ["800C", "800A", "800B"] {
        let _ = s
            .compare_and_swap(&key(name), None, Some(issued(name, name)))
            .unwrap();
    }
    // Kinds whose names share a prefix (`claim` and `claim-issued`) stay
    // apart.
    let _ = s
        .compare_and_swap(
            &Key::new(RecordKind::ClaimIssued, "800A"),
            None,
            Some(batch("c1")),
        )
        .unwrap();
    assert_eq!(
        s.names(RecordKind::Issued).unwrap(),
        ["800A", "800B", "800C"]
    );
    assert_eq!(s.names(RecordKind::ClaimIssued).unwrap(), ["800A"]);
    assert_eq!(s.names(RecordKind::Claim).unwrap(), Vec::<String>::new());
    let listed = s.list(RecordKind::Issued).unwrap();
    let names: Vec<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["800A", "800B", "800C"]);
    for (name, v) in &listed {
        assert_eq!(v.record, issued(name, name));
        assert_eq!(s.load(&key(name)).unwrap().unwrap().version, v.version);
    }
    assert!(s.delete(&key("800B")).unwrap());
    assert_eq!(s.names(RecordKind::Issued).unwrap(), ["800A", "800C"]);
    assert_eq!(s.list(RecordKind::Issued).unwrap().len(), 2);
}

const THREADS: usize = 16;

fn racing_threads(f: Fixture) {
    let store = f.store.clone();
    let k = key("800A");
    let _ = store
        .compare_and_swap(&k, None, Some(issued("800A", "0")))
        .unwrap();
    // Rounds: every thread reads the same version, then all try to write
    // it: exactly one wins each round, the others see the winner's version.
    const ROUNDS: usize = 3;
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, barrier, k) = (store.clone(), barrier.clone(), k.clone());
            std::thread::spawn(move || {
                let mut won = 0;
                for round in 0..ROUNDS {
                    barrier.wait();
                    let seen = store.load(&k).unwrap().unwrap().version;
                    barrier.wait();
                    let value = format!("round {round} thread {t}");
                    match store
                        .compare_and_swap(&k, Some(seen), Some(issued("800A", &value)))
                        .unwrap()
                    {
                        Cas::Done(Some(_)) => won += 1,
                        Cas::Conflict(Some(now)) => assert!(now > seen),
                        other => panic!("round {round}: {other:?}"),
                    }
                    barrier.wait();
                }
                won
            })
        })
        .collect();
    let wins: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(wins, ROUNDS, "exactly one winner per round");

    // Counting: every thread adds 1, retrying on conflict, a few times;
    // no increment is lost.
    const EACH: usize = 4;
    let _ = store
        .compare_and_swap(
            &k,
            Some(store.load(&k).unwrap().unwrap().version),
            Some(issued("800A", "0")),
        )
        .unwrap();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (store, k) = (store.clone(), k.clone());
            std::thread::spawn(move || {
                let mut conflicts = 0;
                for _ in 0..EACH {
                    loop {
                        let current = store.load(&k).unwrap().unwrap();
                        let Record::Issued(r) = &current.record else {
                            panic!("not an issued record");
                        };
                        let next = r.common_name.parse::<usize>().unwrap() + 1;
                        match store
                            .compare_and_swap(
                                &k,
                                Some(current.version),
                                Some(issued("800A", &next.to_string())),
                            )
                            .unwrap()
                        {
                            Cas::Done(_) => break,
                            Cas::Conflict(_) => conflicts += 1,
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(value_of(&*store, &k), (THREADS * EACH).to_string());
}

fn invalid_keys(f: Fixture) {
    let s = &*f.store;
    // A record of another kind than its key, in every store.
    assert_eq!(
        s.compare_and_swap(
            &Key::new(RecordKind::Claim, "c1"),
            None,
            Some(issued("800A", "x"))
        ),
        Err(StoreError::WrongKind {
            key: "claim \"c1\"".into(),
            found: RecordKind::Issued,
        })
    );
    assert_eq!(s.load(&Key::new(RecordKind::Claim, "c1")).unwrap(), None);
    if !f.checks_names {
        return;
    }
    for name in ["", "../x", "a/b", "-a", ".hidden", "a b", &"a".repeat(251)] {
        let k = key(name);
        let refused = |r: Result<(), StoreError>, op: &str| match r {
            Err(StoreError::InvalidKey { key, .. }) => assert_eq!(key, k.to_string(), "{op}"),
            other => panic!("{op} {name:?}: {other:?}"),
        };
        refused(s.load(&k).map(|_| ()), "load");
        refused(
            s.compare_and_swap(&k, None, Some(issued(name, "x")))
                .map(|_| ()),
            "compare-and-swap",
        );
        refused(s.delete(&k).map(|_| ()), "delete");
    }
    assert_eq!(s.names(RecordKind::Issued).unwrap(), Vec::<String>::new());
}

fn large_values(f: Fixture) {
    let s = &*f.store;
    let big = "x".repeat(1024 * 1024);
    let Cas::Done(Some(v)) = s
        .compare_and_swap(&key("800A"), None, Some(issued("800A", &big)))
        .unwrap()
    else {
        panic!("create was not done");
    };
    let loaded = s.load(&key("800A")).unwrap().unwrap();
    assert_eq!((loaded.version, loaded.record), (v, issued("800A", &big)));
    let listed = s.list(RecordKind::Issued).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].1.record, issued("800A", &big));
}

/// One test per store for each property.
macro_rules! contract {
    ($($property:ident),* $(,)?) => {
        mod memory_store {
            $(#[test] fn $property() { super::$property(super::memory()) })*
        }
        mod file_store {
            $(#[test] fn $property() { super::$property(super::file()) })*
        }
        mod etcd_store {
            $(#[test] fn $property() { super::$property(super::etcd()) })*
        }
    };
}

contract!(
    load_missing,
    create,
    create_exists,
    cas_right_and_stale,
    delete_with_version,
    names_and_list_per_kind,
    racing_threads,
    invalid_keys,
    large_values,
);

/// With etcd stopped, every operation fails with `StoreError::Unavailable`
/// naming the endpoint, after the retries and within the timeouts; when
/// etcd is back, the same store works again.
#[test]
fn etcd_stopped_is_unavailable_then_recovers() {
    let mut server = etcd::Etcd::start();
    let url = EtcdUrl::parse(&server.store_url("/contract/site")).unwrap();
    let options = EtcdOptions::default();
    let store = EtcdStore::with_options(&url, options).unwrap();
    let k = key("800A");
    let Cas::Done(Some(v)) = store
        .compare_and_swap(&k, None, Some(issued("800A", "one")))
        .unwrap()
    else {
        panic!("create was not done");
    };
    server.stop();
    let bound = options.retry_for + options.request_timeout + Duration::from_secs(5);
    type Op<'a> = Box<dyn Fn() -> Result<(), StoreError> + 'a>;
    let ops: [(&str, Op<'_>); 4] = [
        ("load", Box::new(|| store.load(&k).map(|_| ()))),
        (
            "compare-and-swap",
            Box::new(|| {
                store
                    .compare_and_swap(&k, Some(v), Some(issued("800A", "two")))
                    .map(|_| ())
            }),
        ),
        (
            "names",
            Box::new(|| store.names(RecordKind::Issued).map(|_| ())),
        ),
        ("delete", Box::new(|| store.delete(&k).map(|_| ()))),
    ];
    for (op, run) in ops {
        let start = Instant::now();
        match run() {
            Err(StoreError::Unavailable { reason }) => {
                assert!(reason.contains(&server.client_url()), "{op}: {reason}");
                assert!(reason.contains("etcd did not answer"), "{op}: {reason}");
            }
            other => panic!("{op} with etcd stopped: {other:?}"),
        }
        assert!(start.elapsed() < bound, "{op} took {:?}", start.elapsed());
    }
    server.resume();
    assert_eq!(value_of(&store, &k), "one");
    let done = store
        .compare_and_swap(&k, Some(v), Some(issued("800A", "two")))
        .unwrap();
    let now_at = store.load(&k).unwrap().unwrap().version;
    assert_eq!(done, Cas::Done(Some(now_at)));
    assert_eq!(value_of(&store, &k), "two");
}

/// The etcd store keeps each record under `PREFIX/KIND/NAME`, as the
/// record's JSON exactly as the file store writes it inside its file.
#[test]
fn etcd_keys_and_values_match_the_file_store() {
    let server = etcd::Etcd::start();
    let url = EtcdUrl::parse(&server.store_url("/skupper/west")).unwrap();
    let store = EtcdStore::open(&url).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = FileStore::open(dir.path()).unwrap();
    for s in [&store as &dyn Store, &files] {
        let _ = s
            .compare_and_swap(&key("800A"), None, Some(issued("800A", "one")))
            .unwrap();
    }
    assert_eq!(
        server.ctl(&["get", "--prefix", "--keys-only", "/skupper/west/"]),
        "/skupper/west/issued/800A\n\n"
    );
    // etcdctl prints the value and a newline.
    let value = server.ctl(&["get", "--print-value-only", "/skupper/west/issued/800A"]);
    let value = value.strip_suffix('\n').unwrap();
    assert!(value.starts_with("{\n  \"kind\": \"issued\""), "{value}");
    // The file holds `{"version": 1, "record": RECORD}`, pretty: the same
    // bytes, indented one level.
    let record = value.strip_suffix('\n').unwrap().replace('\n', "\n  ");
    let file = std::fs::read_to_string(files.path_of(&key("800A")).unwrap()).unwrap();
    assert_eq!(
        file,
        format!("{{\n  \"version\": 1,\n  \"record\": {record}\n}}\n")
    );
}

/// With etcd's authentication on, the user and password of the URL are
/// used; a wrong password is refused at once (not retried) and never
/// shown.
#[test]
fn etcd_user_and_password() {
    let server = etcd::Etcd::start();
    server.ctl(&["user", "add", "root", "--new-user-password", "s3cret-pw"]);
    server.ctl(&["user", "grant-role", "root", "root"]);
    server.ctl(&["auth", "enable"]);
    let at = |userinfo: &str| {
        let url = format!("etcd://{userinfo}{}/auth/site", server.endpoint());
        EtcdStore::open(&EtcdUrl::parse(&url).unwrap()).unwrap()
    };
    let store = at("root:s3cret-pw@");
    let Cas::Done(Some(_)) = store
        .compare_and_swap(&key("800A"), None, Some(issued("800A", "one")))
        .unwrap()
    else {
        panic!("create was not done");
    };
    assert_eq!(value_of(&store, &key("800A")), "one");

    for (userinfo, why) in [
        ("root:wrong-pw@", "authentication failed"),
        ("", "user name is empty"),
    ] {
        let store = at(userinfo);
        match store.load(&key("800A")) {
            Err(StoreError::Unavailable { reason }) => {
                assert!(reason.contains("etcd refused the request"), "{reason}");
                assert!(reason.contains(why), "{reason}");
                assert!(reason.contains(&server.client_url()), "{reason}");
                assert!(!reason.contains("wrong-pw"), "{reason}");
                assert!(
                    !reason.contains("etcd did not answer"),
                    "not retried: {reason}"
                );
            }
            other => panic!("{userinfo:?}: {other:?}"),
        }
        assert!(!format!("{store:?}").contains("wrong-pw"));
    }
}

/// etcds:// with the CA and a client certificate: the store works against
/// an etcd that serves TLS only and requires client certificates; without
/// the client certificate etcd refuses the connection.
#[test]
fn etcd_over_tls_with_a_client_certificate() {
    let server = etcd::Etcd::start_tls();
    let files = server.tls_files();
    let url = format!(
        "etcds://{}/tls/site?ca={}&cert={}&key={}",
        server.endpoint(),
        files.ca.display(),
        files.client_cert.display(),
        files.client_key.display()
    );
    let store = EtcdStore::open(&EtcdUrl::parse(&url).unwrap()).unwrap();
    let Cas::Done(Some(_)) = store
        .compare_and_swap(&key("800A"), None, Some(issued("800A", "one")))
        .unwrap()
    else {
        panic!("create was not done");
    };
    assert_eq!(value_of(&store, &key("800A")), "one");
    assert_eq!(
        server.ctl(&["get", "--prefix", "--keys-only", "/tls/"]),
        "/tls/site/issued/800A\n\n"
    );

    let without_cert = format!(
        "etcds://{}/tls/site?ca={}",
        server.endpoint(),
        files.ca.display()
    );
    let options = EtcdOptions::default().retry_for(Duration::from_secs(1));
    let store = EtcdStore::with_options(&EtcdUrl::parse(&without_cert).unwrap(), options).unwrap();
    match store.load(&key("800A")) {
        Err(StoreError::Unavailable { reason }) => {
            assert!(reason.contains(&server.client_url()), "{reason}");
        }
        other => panic!("without a client certificate: {other:?}"),
    }

    let missing = format!(
        "etcds://{}/tls/site?ca=/nonexistent/ca.pem",
        server.endpoint()
    );
    match EtcdStore::open(&EtcdUrl::parse(&missing).unwrap()) {
        Err(StoreError::Unavailable { reason }) => assert!(
            reason.contains("cannot read the etcd CA certificate (ca=) /nonexistent/ca.pem"),
            "{reason}"
        ),
        other => panic!("a missing CA file: {other:?}"),
    }
}

/// A TCP proxy in front of etcd that can lose etcd's answers: once armed,
/// what etcd sends back is dropped for a while and then the connection is
/// cut, as when a leader is lost after committing a write.
struct LossyProxy {
    port: u16,
    armed: Arc<std::sync::atomic::AtomicBool>,
    cut: Arc<std::sync::atomic::AtomicUsize>,
}

impl LossyProxy {
    fn start(upstream: u16) -> LossyProxy {
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(AtomicUsize::new(0));
        let (armed2, cut2) = (armed.clone(), cut.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_read, &mut s_write);
                    let _ = s_write.shutdown(Shutdown::Write);
                });
                let (armed, cut) = (armed2.clone(), cut2.clone());
                std::thread::spawn(move || {
                    use std::io::{Read, Write};
                    let (mut s_read, mut c_write) = (server, client);
                    let mut buf = [0u8; 16384];
                    loop {
                        let n = match s_read.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if armed.load(Ordering::SeqCst) {
                            // Let etcd finish what it was asked, lose the
                            // answer, then cut the connection.
                            std::thread::sleep(Duration::from_millis(500));
                            armed.store(false, Ordering::SeqCst);
                            cut.fetch_add(1, Ordering::SeqCst);
                            let _ = c_write.shutdown(Shutdown::Both);
                            let _ = s_read.shutdown(Shutdown::Both);
                            break;
                        }
                        if c_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        LossyProxy { port, armed, cut }
    }
}

/// A compare-and-swap that etcd applied but whose answer was lost is
/// retried safely: the store reads the record back, finds the bytes it
/// wrote at a new revision, and reports `Done` with that version (not a
/// conflict with its own write, and not a second write).
#[test]
fn etcd_compare_and_swap_whose_answer_is_lost_is_done_once() {
    use std::sync::atomic::Ordering;
    let server = etcd::Etcd::start();
    let upstream: u16 = server
        .endpoint()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let proxy = LossyProxy::start(upstream);
    let url = EtcdUrl::parse(&format!("etcd://127.0.0.1:{}/lossy/site", proxy.port)).unwrap();
    let store = EtcdStore::open(&url).unwrap();
    let k = key("800A");
    let Cas::Done(Some(v1)) = store
        .compare_and_swap(&k, None, Some(issued("800A", "one")))
        .unwrap()
    else {
        panic!("create was not done");
    };
    for (round, value) in ["two", "three"].into_iter().enumerate() {
        let before = store.load(&k).unwrap().unwrap().version;
        proxy.armed.store(true, Ordering::SeqCst);
        let done = store
            .compare_and_swap(&k, Some(before), Some(issued("800A", value)))
            .unwrap();
        assert_eq!(
            proxy.cut.load(Ordering::SeqCst),
            round + 1,
            "the answer was lost"
        );
        let now = store.load(&k).unwrap().unwrap();
        assert_eq!(done, Cas::Done(Some(now.version)), "round {round}");
        assert_eq!(now.record, issued("800A", value));
        // Written once: one revision of etcd since the last write.
        let revision: serde_json::Value =
            serde_json::from_str(&server.ctl(&["get", "/lossy/site/issued/800A", "-w", "json"]))
                .unwrap();
        assert_eq!(
            revision["kvs"][0]["version"],
            (round + 2) as u64,
            "{revision}"
        );
    }
    assert!(v1 > 0);
}

/// A watch on a record reports each write of it by another handle, stays
/// quiet while nothing changes (longer than a request's timeout), and
/// survives an etcd restart (reporting once that it was made again).
#[test]
fn etcd_watch_reports_changes_of_a_record() {
    let mut server = etcd::Etcd::start();
    let url = EtcdUrl::parse(&server.store_url("/watch/site")).unwrap();
    let watched = EtcdStore::open(&url).unwrap();
    let writer = EtcdStore::open(&url).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let k = key("800A");
    let _watch = watched
        .watch(&k, move || {
            let _ = tx.lock().unwrap().send(());
        })
        .unwrap();
    let wait = Duration::from_secs(10);
    // Until the watch is in place, writes are not seen: write until one is.
    let mut version = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let Cas::Done(v) = writer
            .compare_and_swap(&k, version, Some(issued("800A", "one")))
            .unwrap()
        else {
            panic!("write was not done");
        };
        version = v;
        if rx.recv_timeout(Duration::from_millis(200)).is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the watch never reported a write"
        );
    }
    while rx.try_recv().is_ok() {}

    std::thread::sleep(EtcdOptions::default().request_timeout + Duration::from_secs(1));
    assert_eq!(
        rx.try_recv().map(|_| ()),
        Err(std::sync::mpsc::TryRecvError::Empty),
        "reported a change without a write (or the watch ended)"
    );
    let Cas::Done(v) = writer
        .compare_and_swap(&k, version, Some(issued("800A", "two")))
        .unwrap()
    else {
        panic!("write was not done");
    };
    rx.recv_timeout(wait).expect("the update is reported");

    server.stop();
    server.resume();
    rx.recv_timeout(wait)
        .expect("the watch reports it was made again");
    while rx.recv_timeout(Duration::from_millis(300)).is_ok() {}
    assert_eq!(
        writer.compare_and_swap(&k, v, None).unwrap(),
        Cas::Done(None)
    );
    rx.recv_timeout(wait).expect("the delete is reported");
}
