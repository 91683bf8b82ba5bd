//! Tests of `FileStore`: the same compare-and-swap semantics as
//! `MemoryStore`, real sites kept on disk, errors, permissions, name
//! containment, temporary files, and concurrency across threads and
//! processes.
// The CLI is where the OS is allowed in: its tests use files, threads,
// clocks and processes.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use skupper_token::claim::{ClaimRecord, RedeemError, RedeemRequest};
use skupper_token::incoming::IncomingRecord;
use skupper_token::link::LinkRecord;
use skupper_token::random::SeededRandom;
use skupper_token::records::{IssuedBatch, IssuedCert};
use skupper_token::site::{IssuedRecord, IssuedVia, Site, SiteConfig, TokenOptions};
use skupper_token::store::{
    Cas, Key, MemoryStore, Record, RecordKind, Store, StoreError, Version, Versioned,
};
use skupper_token::token::{ClaimToken, Token};
use skupper_token::v2::GrantOptions;
use skupper_token::version::VERSION;
use skupper_token_cli::file_store::{FileStore, DIR_MODE, FILE_MODE, LOCK_FILE_NAME};
use time::macros::datetime;
use time::OffsetDateTime;

fn now() -> OffsetDateTime {
    datetime!(2025-06-01 12:00 UTC)
}

/// One record of each kind, and a second claim.
struct Samples {
    site: Record,
    claim: Record,
    claim2: Record,
    link: Record,
    issued: Record,
    incoming: Record,
    claim_issued: Record,
    grant: Record,
}

fn samples() -> Samples {
    let mut rng = SeededRandom::new(7);
    let west = Site::create(
        MemoryStore::new(),
        &SiteConfig::new("west"),
        now(),
        &mut rng,
    )
    .unwrap();
    let token = west
        .create_claim_token(&TokenOptions::claim().uses(2), now(), &mut rng)
        .unwrap();
    let load = |key: &Key| west.store().load(key).unwrap().unwrap().record;
    let site = load(&Key::site());
    let claim = load(&Key::new(RecordKind::Claim, token.name.clone()));
    let claim2 = Record::Claim(ClaimRecord::new(
        "second".into(),
        "another password",
        None,
        0,
        1,
        now(),
        &mut rng,
    ));
    let link = Record::Link(Box::new(LinkRecord::new(
        "link1".into(),
        1,
        &Token::Claim(token),
        false,
        now(),
    )));
    let issued = Record::Issued(IssuedRecord {
        serial: "800A".into(),
        common_name: "0b5c8f2e-7c8e-4a43-9b1a-1d0a0e6c9d11".into(),
        via: IssuedVia::Claim {
            name: "some-claim".into(),
        },
        ca_generation: 1,
        issued_at: now(),
        not_after: now() + time::Duration::days(365),
    });
    let incoming = Record::Incoming(IncomingRecord {
        peer_site_id: "0b5c8f2e-7c8e-4a43-9b1a-1d0a0e6c9d11".into(),
        peer_site_name: "east".into(),
        link: "link1".into(),
        certificate_cn: "0b5c8f2e-7c8e-4a43-9b1a-1d0a0e6c9d11".into(),
        certificate_serial: "800A".into(),
        certificate_not_after: now() + time::Duration::days(365),
        ca_generation: 1,
        since: now(),
        holder: "serve".into(),
        lease_until: now() + time::Duration::minutes(1),
    });
    let (grant, _) = west
        .issue_grant(&GrantOptions::new("grant1"), now(), &mut rng)
        .unwrap();
    let grant = Record::Grant(Box::new(grant));
    let claim_issued = Record::ClaimIssued(IssuedBatch {
        claim: "some-claim".into(),
        grant: None,
        ca_generation: 1,
        certs: vec![IssuedCert {
            serial: "800B".into(),
            common_name: "0b5c8f2e-7c8e-4a43-9b1a-1d0a0e6c9d11".into(),
            issued_at: now(),
            not_after: now() + time::Duration::days(365),
        }],
    });
    Samples {
        site,
        claim,
        claim2,
        link,
        issued,
        incoming,
        claim_issued,
        grant,
    }
}

/// Runs one script of compare-and-swaps, loads and lists against `store`,
/// checking each outcome, and returns a transcript of the outcomes so that
/// two stores can be compared step by step.
fn check_cas_semantics(store: &dyn Store, s: &Samples) -> Vec<String> {
    let mut log = Vec::new();
    let mut step = |what: &str, got: String| log.push(format!("{what}: {got}"));
    let claim = |name: &str| Key::new(RecordKind::Claim, name);
    let cas = |key: &Key, expected: Option<Version>, new: Option<&Record>| {
        store
            .compare_and_swap(key, expected, new.cloned())
            .unwrap_or_else(|e| panic!("compare-and-swap on {key}: {e}"))
    };
    let load = |key: &Key| store.load(key).unwrap();
    let names = |kind| -> Vec<(String, Version)> {
        store
            .list(kind)
            .unwrap()
            .into_iter()
            .map(|(n, v)| (n, v.version))
            .collect()
    };

    // An empty store.
    for kind in RecordKind::ALL {
        assert_eq!(names(kind), vec![], "{kind}");
    }
    assert_eq!(load(&Key::site()), None);
    let a = claim("a");

    // Updating or deleting what does not exist conflicts.
    let r = cas(&a, Some(1), Some(&s.claim));
    assert_eq!(r, Cas::Conflict(None));
    step("update missing", format!("{r:?}"));
    let r = cas(&a, Some(1), None);
    assert_eq!(r, Cas::Conflict(None));
    step("delete missing at v1", format!("{r:?}"));
    // Deleting what must not exist, and does not, is done.
    let r = cas(&a, None, None);
    assert_eq!(r, Cas::Done(None));
    step("delete missing", format!("{r:?}"));
    assert_eq!(load(&a), None);

    // Create: version 1.
    let r = cas(&a, None, Some(&s.claim));
    assert_eq!(r, Cas::Done(Some(1)));
    step("create", format!("{r:?}"));
    assert_eq!(
        load(&a),
        Some(Versioned {
            version: 1,
            record: s.claim.clone()
        })
    );
    // Creating again conflicts and reports the current version.
    let r = cas(&a, None, Some(&s.claim2));
    assert_eq!(r, Cas::Conflict(Some(1)));
    step("create again", format!("{r:?}"));
    // A stale or future version conflicts.
    for stale in [0, 2, 7] {
        let r = cas(&a, Some(stale), Some(&s.claim2));
        assert_eq!(r, Cas::Conflict(Some(1)), "expected {stale}");
        step("update at wrong version", format!("{r:?}"));
    }
    assert_eq!(
        load(&a).unwrap().record,
        s.claim,
        "conflicts change nothing"
    );

    // Update: +1 each time.
    let r = cas(&a, Some(1), Some(&s.claim2));
    assert_eq!(r, Cas::Done(Some(2)));
    step("update", format!("{r:?}"));
    let r = cas(&a, Some(2), Some(&s.claim));
    assert_eq!(r, Cas::Done(Some(3)));
    step("update", format!("{r:?}"));
    assert_eq!(
        load(&a),
        Some(Versioned {
            version: 3,
            record: s.claim.clone()
        })
    );

    // A record of another kind is refused before anything else.
    for (expected, wrong) in [(Some(3), &s.link), (None, &s.site), (Some(1), &s.issued)] {
        let e = store
            .compare_and_swap(&a, expected, Some(wrong.clone()))
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::WrongKind { found, .. } if *found == wrong.kind()),
            "{e:?}"
        );
        step("wrong kind", e.to_string());
    }
    assert_eq!(load(&a).unwrap().version, 3);

    // Delete at the wrong version conflicts; at the right one it is done.
    let r = cas(&a, Some(2), None);
    assert_eq!(r, Cas::Conflict(Some(3)));
    step("delete at wrong version", format!("{r:?}"));
    let r = cas(&a, None, None);
    assert_eq!(r, Cas::Conflict(Some(3)));
    step("delete expecting absence", format!("{r:?}"));
    let r = cas(&a, Some(3), None);
    assert_eq!(r, Cas::Done(None));
    step("delete", format!("{r:?}"));
    assert_eq!(load(&a), None);
    let r = cas(&a, Some(3), None);
    assert_eq!(r, Cas::Conflict(None));
    step("delete again", format!("{r:?}"));

    // Created again after a delete: back to version 1.
    let r = cas(&a, None, Some(&s.claim2));
    assert_eq!(r, Cas::Done(Some(1)));
    step("recreate", format!("{r:?}"));

    // Every kind round-trips, and kinds do not mix.
    let site_key = Key::site();
    let link_key = Key::new(RecordKind::Link, "link1");
    let issued_key = Key::new(RecordKind::Issued, "800A");
    let incoming_key = Key::new(
        RecordKind::Incoming,
        IncomingRecord::key_name("0b5c8f2e-7c8e-4a43-9b1a-1d0a0e6c9d11", "link1"),
    );
    let Record::Grant(grant) = &s.grant else {
        panic!("not a grant")
    };
    let grant_key = Key::new(RecordKind::Grant, grant.id.clone());
    for (key, record) in [
        (&site_key, &s.site),
        (&link_key, &s.link),
        (&issued_key, &s.issued),
        (&incoming_key, &s.incoming),
        (&grant_key, &s.grant),
    ] {
        let r = cas(key, None, Some(record));
        assert_eq!(r, Cas::Done(Some(1)));
        step("create other kind", format!("{r:?}"));
        assert_eq!(load(key).unwrap().record, *record);
    }
    assert_eq!(load(&Key::new(RecordKind::Link, "a")), None);

    // Lists are ordered by name (byte order) and hold only their kind.
    for name in ["b", "c9", "c10", "A1", "z.z-z"] {
        let r = cas(&claim(name), None, Some(&s.claim));
        assert_eq!(r, Cas::Done(Some(1)));
    }
    let r = cas(&claim("c9"), Some(1), Some(&s.claim2));
    assert_eq!(r, Cas::Done(Some(2)));
    let listed = names(RecordKind::Claim);
    assert_eq!(
        listed,
        [
            ("A1", 1),
            ("a", 1),
            ("b", 1),
            ("c10", 1),
            ("c9", 2),
            ("z.z-z", 1)
        ]
        .map(|(n, v)| (n.to_owned(), v))
    );
    step("list claims", format!("{listed:?}"));
    let full = store.list(RecordKind::Claim).unwrap();
    assert_eq!(full[4].1.record, s.claim2);
    assert_eq!(full[0].1.record, s.claim);
    for kind in [
        RecordKind::Site,
        RecordKind::Link,
        RecordKind::Issued,
        RecordKind::Incoming,
        RecordKind::Grant,
    ] {
        let listed = names(kind);
        assert_eq!(listed.len(), 1, "{kind}");
        step("list other kind", format!("{listed:?}"));
    }
    log
}

fn dump(store: &dyn Store) -> Vec<Vec<(String, Versioned<Record>)>> {
    RecordKind::ALL
        .iter()
        .map(|&kind| store.list(kind).unwrap())
        .collect()
}

#[test]
fn cas_semantics_are_those_of_the_memory_store() {
    let s = samples();
    let memory = MemoryStore::new();
    let expected = check_cas_semantics(&memory, &s);

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("west");
    let files = FileStore::open(&dir).unwrap();
    let got = check_cas_semantics(&files, &s);
    assert_eq!(got, expected);
    assert_eq!(dump(&files), dump(&memory));

    // Everything is on disk: a new store on the directory sees the same.
    let reopened = FileStore::open(&dir).unwrap();
    assert_eq!(dump(&reopened), dump(&memory));
    assert!(dir.join("claim/c10.json").is_file());
    assert!(dir.join("issued/800A.json").is_file());
    assert!(dir.join("site/site.json").is_file());
    let Record::Grant(grant) = &s.grant else {
        panic!("not a grant")
    };
    assert!(dir.join(format!("grant/{}.json", grant.id)).is_file());

    // The format is the documented one.
    let text = fs::read_to_string(dir.join("claim/c9.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["version"], 2);
    assert_eq!(json["record"]["kind"], "claim");
    assert_eq!(json["record"]["name"], "second");
}

fn redeem_request(token: &ClaimToken, site_id: &str) -> RedeemRequest {
    RedeemRequest {
        claim: token.name.clone(),
        password: token.password.expose().as_bytes().to_vec(),
        site_id: site_id.to_owned(),
        site_version: VERSION.to_owned(),
    }
}

/// A site on disk in `dir` with a claim token allowing `uses` uses.
fn site_with_claim(dir: &Path, uses: u32) -> (String, ClaimToken) {
    let mut rng = SeededRandom::new(1);
    let site = Site::create(
        FileStore::open(dir).unwrap(),
        &SiteConfig::new("west"),
        now(),
        &mut rng,
    )
    .unwrap();
    let token = site
        .create_claim_token(&TokenOptions::claim().uses(uses), now(), &mut rng)
        .unwrap();
    (site.id().to_owned(), token)
}

#[test]
fn a_site_survives_reopening() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("west");
    let (id, token) = site_with_claim(&dir, 2);
    assert!(dir
        .join("claim")
        .join(format!("{}.json", token.name))
        .is_file());

    let site = Site::open(FileStore::open(&dir).unwrap()).unwrap();
    assert_eq!(site.id(), id);
    assert_eq!(site.record().unwrap().id, id);
    assert_eq!(site.record().unwrap().created_at, now());

    let mut rng = SeededRandom::new(2);
    let at = now() + time::Duration::minutes(1);
    let mut wrong = redeem_request(&token, "east-site-id");
    wrong.password = b"not the password".to_vec();
    assert!(matches!(
        site.redeem_claim(&wrong, at, &mut rng),
        Err(RedeemError::WrongPassword { .. })
    ));
    let cert = site
        .redeem_claim(&redeem_request(&token, "east-site-id"), at, &mut rng)
        .unwrap();
    assert_eq!(cert.issuer_site_id, id);

    // A third handle sees the spent use and the issued certificate.
    let again = Site::open(FileStore::open(&dir).unwrap()).unwrap();
    let claims = again.claims().unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].uses_remaining, Some(1));
    assert_eq!(claims[0].claims_made, 1);
    let issued = again.issued().unwrap();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].common_name, "east-site-id");
    // It is kept in the claim's file, written with the spent use.
    assert!(
        fs::read_to_string(dir.join("claim").join(format!("{}.json", token.name)))
            .unwrap()
            .contains(&issued[0].serial)
    );
    // Creating a second site in the same directory is refused.
    assert!(Site::create(
        FileStore::open(&dir).unwrap(),
        &SiteConfig::new("west"),
        now(),
        &mut rng
    )
    .is_err());
}

/// Writes `contents` over the file of `key` and returns its path.
fn overwrite(store: &FileStore, key: &Key, contents: &str) -> PathBuf {
    let path = store.path_of(key).unwrap();
    fs::write(&path, contents).unwrap();
    path
}

#[test]
fn a_corrupt_file_is_reported_with_its_path() {
    let s = samples();
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::open(tmp.path().join("west")).unwrap();
    let key = Key::new(RecordKind::Claim, "a");
    let good = |store: &FileStore| {
        let _ = fs::remove_file(store.path_of(&key).unwrap());
        assert_eq!(
            store
                .compare_and_swap(&key, None, Some(s.claim.clone()))
                .unwrap(),
            Cas::Done(Some(1))
        );
        fs::read_to_string(store.path_of(&key).unwrap()).unwrap()
    };
    let valid = good(&store);
    let link_json = valid.replace("\"kind\": \"claim\"", "\"kind\": \"link\"");
    let cases = [
        ("not json", "{not json".to_owned()),
        ("empty", String::new()),
        ("torn", valid[..valid.len() / 2].to_owned()),
        (
            "version 0",
            valid.replace("\"version\": 1", "\"version\": 0"),
        ),
        (
            "negative version",
            valid.replace("\"version\": 1", "\"version\": -1"),
        ),
        ("no version", valid.replace("\"version\": 1,", "")),
        (
            "unknown field",
            valid.replace("\"version\": 1,", "\"version\": 1, \"extra\": true,"),
        ),
        (
            "unknown kind",
            valid.replace("\"kind\": \"claim\"", "\"kind\": \"nope\""),
        ),
        ("other kind's fields", link_json),
        ("binary", "\u{0}\u{1}\u{2}".to_owned()),
    ];
    for (what, contents) in cases {
        good(&store);
        let path = overwrite(&store, &key, &contents);
        let path_text = path.display().to_string();
        let check = |e: StoreError| {
            assert!(
                matches!(&e, StoreError::Corrupt { key: k, .. } if k == &key),
                "{what}: {e:?}"
            );
            assert!(e.to_string().contains(&path_text), "{what}: {e}");
        };
        check(store.load(&key).unwrap_err());
        check(store.list(RecordKind::Claim).unwrap_err());
        // A compare-and-swap cannot compare against a corrupt record.
        check(
            store
                .compare_and_swap(&key, Some(1), Some(s.claim2.clone()))
                .unwrap_err(),
        );
        check(store.compare_and_swap(&key, Some(1), None).unwrap_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), contents, "{what}");
    }

    // A record of the wrong kind in a valid file.
    good(&store);
    let path = overwrite(
        &store,
        &key,
        &serde_json::json!({"version": 1, "record": s.link}).to_string(),
    );
    let e = store.load(&key).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    assert!(e.to_string().contains("link record"), "{e}");

    // A corrupt site record stops the site from opening, naming the file.
    let site_dir = tmp.path().join("east");
    site_with_claim(&site_dir, 1);
    let site_file = site_dir.join("site/site.json");
    fs::write(
        &site_file,
        "{\"version\": 1, \"record\": {\"kind\": \"site\"}}",
    )
    .unwrap();
    let e = Site::open(FileStore::open(&site_dir).unwrap()).unwrap_err();
    assert!(
        e.to_string().contains(&site_file.display().to_string()),
        "{e}"
    );
}

#[test]
fn io_failures_are_unavailable_naming_the_path() {
    let s = samples();
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::open(tmp.path().join("west")).unwrap();
    // A directory where a record file should be.
    let key = Key::new(RecordKind::Claim, "x");
    let path = store.path_of(&key).unwrap();
    fs::create_dir(&path).unwrap();
    let path_text = path.display().to_string();
    let check = |e: StoreError| {
        assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains(&path_text), "{text}");
        assert!(text.contains("os error"), "{text}");
    };
    check(store.load(&key).unwrap_err());
    check(store.list(RecordKind::Claim).unwrap_err());
    check(
        store
            .compare_and_swap(&key, None, Some(s.claim.clone()))
            .unwrap_err(),
    );

    // A file where the site directory should be.
    let file = tmp.path().join("plain-file");
    fs::write(&file, "x").unwrap();
    let e = FileStore::open(&file).unwrap_err();
    assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
    assert!(e.to_string().contains(&file.display().to_string()), "{e}");
    let e = FileStore::open(file.join("below")).unwrap_err();
    assert!(e.to_string().contains(&file.display().to_string()), "{e}");

    // A file where a kind directory should be.
    let odd = tmp.path().join("odd");
    fs::create_dir(&odd).unwrap();
    fs::write(odd.join("link"), "x").unwrap();
    let e = FileStore::open(&odd).unwrap_err();
    assert!(
        e.to_string()
            .contains(&odd.join("link").display().to_string()),
        "{e}"
    );
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn directories_are_0700_and_files_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/west");
    site_with_claim(&dir, 1);
    for d in [
        tmp.path().join("a"),
        tmp.path().join("a/b"),
        dir.clone(),
        dir.join("site"),
        dir.join("claim"),
        dir.join("link"),
        dir.join("issued"),
    ] {
        assert_eq!(mode(&d), DIR_MODE, "{}", d.display());
    }
    let mut files = vec![dir.join(LOCK_FILE_NAME), dir.join("site/site.json")];
    for entry in fs::read_dir(dir.join("claim")).unwrap() {
        files.push(entry.unwrap().path());
    }
    assert_eq!(files.len(), 3);
    for f in files {
        assert_eq!(mode(&f), FILE_MODE, "{}", f.display());
    }
    assert_eq!(DIR_MODE, 0o700);
    assert_eq!(FILE_MODE, 0o600);

    // A kind directory removed by hand is created again, also 0700.
    let store = FileStore::open(&dir).unwrap();
    fs::remove_dir_all(dir.join("link")).unwrap();
    let s = samples();
    let r = store
        .compare_and_swap(&Key::new(RecordKind::Link, "link1"), None, Some(s.link))
        .unwrap();
    assert_eq!(r, Cas::Done(Some(1)));
    assert_eq!(mode(&dir.join("link")), DIR_MODE);
    assert_eq!(mode(&dir.join("link/link1.json")), FILE_MODE);
}

#[test]
fn names_that_could_leave_the_directory_are_refused() {
    let s = samples();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sites/west");
    let store = FileStore::open(&dir).unwrap();
    // Absolute, but inside the test's directory should the check ever fail.
    let absolute = tmp.path().join("abs").display().to_string();
    let bad = [
        "../escaped",
        "..",
        ".",
        "a/b",
        &absolute,
        "../../sites/east",
        "",
        ".lock",
        ".tmp-1-1",
        "nul\0byte",
        "back\\slash",
        "UPPER space",
    ];
    for name in bad {
        for kind in RecordKind::ALL {
            let key = Key::new(kind, name);
            let check = |e: StoreError| {
                assert!(
                    matches!(e, StoreError::InvalidKey { .. }),
                    "{name:?}: {e:?}"
                );
                assert!(e.to_string().contains(&format!("{name:?}")), "{e}");
            };
            check(store.load(&key).unwrap_err());
            check(store.path_of(&key).unwrap_err());
            let record = match kind {
                RecordKind::Site => &s.site,
                RecordKind::Claim => &s.claim,
                RecordKind::Link => &s.link,
                RecordKind::Issued => &s.issued,
                RecordKind::Incoming => &s.incoming,
                RecordKind::ClaimIssued => &s.claim_issued,
                RecordKind::Grant => &s.grant,
            };
            check(
                store
                    .compare_and_swap(&key, None, Some(record.clone()))
                    .unwrap_err(),
            );
            check(store.compare_and_swap(&key, None, None).unwrap_err());
        }
    }
    // Nothing was written anywhere but the lock file and kind directories.
    let mut top: Vec<_> = fs::read_dir(tmp.path().join("sites"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    top.sort();
    assert_eq!(top, ["west"]);
    for kind in RecordKind::ALL {
        assert_eq!(fs::read_dir(dir.join(kind.as_str())).unwrap().count(), 0);
        assert_eq!(store.list(kind).unwrap(), vec![]);
    }
    let long = "a".repeat(251);
    assert!(store.load(&Key::new(RecordKind::Claim, long)).is_err());
    let longest = "a".repeat(250);
    let r = store
        .compare_and_swap(&Key::new(RecordKind::Claim, longest), None, Some(s.claim))
        .unwrap();
    assert_eq!(r, Cas::Done(Some(1)));
}

#[test]
fn temporary_and_stray_files_are_ignored_and_old_ones_removed() {
    let s = samples();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("west");
    let store = FileStore::open(&dir).unwrap();
    let key = Key::new(RecordKind::Claim, "a");
    assert_eq!(
        store
            .compare_and_swap(&key, None, Some(s.claim.clone()))
            .unwrap(),
        Cas::Done(Some(1))
    );
    let valid = fs::read_to_string(store.path_of(&key).unwrap()).unwrap();
    let claims = dir.join("claim");
    // As a crash would leave them: a torn temporary file and a complete one
    // that was never renamed.
    let old_torn = claims.join(".tmp-4242-0");
    let old_whole = claims.join(".tmp-4242-1");
    let fresh = claims.join(".tmp-4243-0");
    fs::write(&old_torn, &valid[..20]).unwrap();
    fs::write(
        &old_whole,
        valid.replace("\"version\": 1", "\"version\": 2"),
    )
    .unwrap();
    fs::write(&fresh, "{").unwrap();
    // Stray files that are not records.
    fs::write(claims.join("notes.txt"), "hello").unwrap();
    fs::write(claims.join("Bad Name.json"), "{").unwrap();
    fs::write(claims.join("a.json~"), "{").unwrap();

    let check = |store: &FileStore| {
        assert_eq!(store.load(&key).unwrap().unwrap().version, 1);
        let listed = store.list(RecordKind::Claim).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, "a");
        assert_eq!(listed[0].1.record, s.claim);
    };
    check(&store);

    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 60 * 60);
    for old in [&old_torn, &old_whole] {
        fs::File::options()
            .write(true)
            .open(old)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
    }
    // Opening removes old temporary files only.
    let reopened = FileStore::open(&dir).unwrap();
    assert!(!old_torn.exists());
    assert!(!old_whole.exists());
    assert!(fresh.exists());
    check(&reopened);
    // Writes still work and do not disturb the stray files.
    assert_eq!(
        reopened
            .compare_and_swap(&key, Some(1), Some(s.claim2.clone()))
            .unwrap(),
        Cas::Done(Some(2))
    );
    assert_eq!(reopened.remove_temp_files(Duration::ZERO).unwrap(), 1);
    assert!(!fresh.exists());
    let mut left: Vec<_> = fs::read_dir(&claims)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["Bad Name.json", "a.json", "a.json~", "notes.txt"]);
}

/// Claim redemption outcomes: (successes, refusals because used up).
fn tally(results: &[Result<(), String>]) -> (usize, usize) {
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let used_up = results
        .iter()
        .filter(|r| matches!(r, Err(e) if e.contains("no uses left")))
        .count();
    (ok, used_up)
}

fn check_claim_spent(dir: &Path, uses: u32) {
    let site = Site::open(FileStore::open(dir).unwrap()).unwrap();
    let claims = site.claims().unwrap();
    assert_eq!(claims[0].uses_remaining, Some(0));
    assert_eq!(claims[0].claims_made, uses);
    assert_eq!(site.issued().unwrap().len(), uses as usize);
}

#[test]
fn threads_redeem_a_three_use_claim_exactly_three_times() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("west");
    let (_, token) = site_with_claim(&dir, 3);
    let barrier = std::sync::Barrier::new(8);
    let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8u64)
            .map(|i| {
                let (dir, token, barrier) = (&dir, &token, &barrier);
                scope.spawn(move || {
                    let site = Site::open(FileStore::open(dir).unwrap()).unwrap();
                    let mut rng = SeededRandom::new(100 + i);
                    let request = redeem_request(token, &format!("site-{i}"));
                    barrier.wait();
                    site.redeem_claim(&request, now(), &mut rng)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(tally(&results), (3, 5), "{results:?}");
    check_claim_spent(&dir, 3);
}

/// Increments the version of `key` `times` times with compare-and-swap,
/// retrying on conflict.
fn bump(store: &dyn Store, key: &Key, times: usize) {
    for _ in 0..times {
        loop {
            let current = store.load(key).unwrap().unwrap();
            match store
                .compare_and_swap(key, Some(current.version), Some(current.record))
                .unwrap()
            {
                Cas::Done(_) => break,
                Cas::Conflict(_) => continue,
            }
        }
    }
}

#[test]
fn threads_never_lose_an_update() {
    let s = samples();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("west");
    let key = Key::new(RecordKind::Claim, "counter");
    let shared = Arc::new(FileStore::open(&dir).unwrap());
    assert_eq!(
        shared
            .compare_and_swap(&key, None, Some(s.claim.clone()))
            .unwrap(),
        Cas::Done(Some(1))
    );
    const THREADS: usize = 8;
    const TIMES: usize = 10;
    std::thread::scope(|scope| {
        for i in 0..THREADS {
            let (dir, key, shared) = (&dir, &key, &shared);
            scope.spawn(move || {
                // Half the threads share one handle, half open their own.
                if i % 2 == 0 {
                    bump(shared.as_ref(), key, TIMES);
                } else {
                    bump(&FileStore::open(dir).unwrap(), key, TIMES);
                }
            });
        }
    });
    let version = shared.load(&key).unwrap().unwrap().version;
    assert_eq!(version, 1 + (THREADS * TIMES) as u64);
    // Writes that lost the race after writing their temporary file (the
    // version changed before they took the lock) removed it again.
    let mut left: Vec<String> = std::fs::read_dir(dir.join("claim"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["counter.json"]);
}

// ---------------------------------------------------------------------------
// Several processes: the test binary runs itself as the children.
// ---------------------------------------------------------------------------

const CHILD_ROLE: &str = "SKUPPER_TOKEN_TEST_CHILD_ROLE";
const CHILD_DIR: &str = "SKUPPER_TOKEN_TEST_CHILD_DIR";
const CHILD_GO: &str = "SKUPPER_TOKEN_TEST_CHILD_GO";
const CHILD_INDEX: &str = "SKUPPER_TOKEN_TEST_CHILD_INDEX";
const CHILD_CLAIM: &str = "SKUPPER_TOKEN_TEST_CHILD_CLAIM";
const CHILD_PASSWORD: &str = "SKUPPER_TOKEN_TEST_CHILD_PASSWORD";
const RESULT_PREFIX: &str = "child-result:";

/// Not a test by itself: when a test below runs this binary again with
/// [`CHILD_ROLE`] set, this is the child's work. Without it, it does
/// nothing.
#[test]
#[allow(clippy::print_stdout)]
fn child_process_entry() {
    let Ok(role) = std::env::var(CHILD_ROLE) else {
        return;
    };
    let var = |name| std::env::var(name).unwrap();
    let dir = PathBuf::from(var(CHILD_DIR));
    let index: u64 = var(CHILD_INDEX).parse().unwrap();
    let go = PathBuf::from(var(CHILD_GO));
    let store = FileStore::open(&dir).unwrap();
    let site = Site::open(store.clone()).unwrap();
    // Start together, to contend for the lock.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !go.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    let result = match role.as_str() {
        "redeem" => {
            let request = RedeemRequest {
                claim: var(CHILD_CLAIM),
                password: var(CHILD_PASSWORD).into_bytes(),
                site_id: format!("process-{index}"),
                site_version: VERSION.to_owned(),
            };
            let mut rng = SeededRandom::new(1000 + index);
            match site.redeem_claim(&request, now(), &mut rng) {
                Ok(_) => "ok".to_owned(),
                Err(e) => format!("refused {e}"),
            }
        }
        "bump" => {
            bump(&store, &Key::new(RecordKind::Claim, var(CHILD_CLAIM)), 10);
            "ok".to_owned()
        }
        other => panic!("unknown child role {other:?}"),
    };
    // The harness prints the test's name on the same line: start a new one.
    println!("\n{RESULT_PREFIX}{result}");
}

/// Runs `n` children with `role` on the site in `dir` and returns each
/// one's result line.
fn run_children(n: u64, role: &str, dir: &Path, claim: &str, password: &str) -> Vec<String> {
    let exe = std::env::current_exe().unwrap();
    let go = dir.with_extension("go");
    let _ = fs::remove_file(&go);
    let children: Vec<_> = (0..n)
        .map(|i| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "child_process_entry",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ROLE, role)
                .env(CHILD_DIR, dir)
                .env(CHILD_GO, &go)
                .env(CHILD_INDEX, i.to_string())
                .env(CHILD_CLAIM, claim)
                .env(CHILD_PASSWORD, password)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    fs::write(&go, "").unwrap();
    children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "child failed: {}\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            let line = stdout
                .lines()
                .find_map(|l| l.trim().strip_prefix(RESULT_PREFIX))
                .unwrap_or_else(|| panic!("no result from child:\n{stdout}"));
            line.to_owned()
        })
        .collect()
}

#[test]
fn processes_redeem_a_three_use_claim_exactly_three_times() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("west");
    let (_, token) = site_with_claim(&dir, 3);
    let lines = run_children(6, "redeem", &dir, &token.name, token.password.expose());
    let results: Vec<Result<(), String>> = lines
        .iter()
        .map(|l| if l == "ok" { Ok(()) } else { Err(l.clone()) })
        .collect();
    assert_eq!(tally(&results), (3, 3), "{lines:?}");
    check_claim_spent(&dir, 3);
}

#[test]
fn processes_never_lose_an_update() {
    let s = samples();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("west");
    site_with_claim(&dir, 1);
    let store = FileStore::open(&dir).unwrap();
    let key = Key::new(RecordKind::Claim, "counter");
    assert_eq!(
        store.compare_and_swap(&key, None, Some(s.claim)).unwrap(),
        Cas::Done(Some(1))
    );
    let lines = run_children(4, "bump", &dir, "counter", "");
    assert!(lines.iter().all(|l| l == "ok"), "{lines:?}");
    assert_eq!(store.load(&key).unwrap().unwrap().version, 1 + 4 * 10);
}
