//! A claim redemption on a site kept in files is one durable write: the
//! claim's file, replaced once (temporary file, fsync, rename, directory
//! fsync), holding the spent use and the certificate issued. Claim files
//! written before that shape still read and redeem; a claim file of a newer
//! schema is refused rather than read without what it holds.
// The CLI is where the OS is allowed in: its tests use files.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use skupper_token::claim::{RedeemError, RedeemRequest};
use skupper_token::random::SeededRandom;
use skupper_token::records::{IssuedRecord, IssuedVia, CLAIM_RECORD_SCHEMA};
use skupper_token::site::{Site, SiteConfig, TokenOptions};
use skupper_token::store::{Cas, Key, Record, RecordKind, Store, StoreError, Version, Versioned};
use skupper_token::token::ClaimToken;
use skupper_token::version::VERSION;
use skupper_token_cli::file_store::FileStore;
use time::macros::datetime;
use time::OffsetDateTime;

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

/// A [`FileStore`] that counts the compare-and-swaps made through it:
/// each one that writes is one temporary file, fsync, rename and directory
/// fsync.
struct Counting {
    inner: FileStore,
    writes: AtomicUsize,
}

impl Store for Counting {
    fn load(&self, key: &Key) -> Result<Option<Versioned<Record>>, StoreError> {
        self.inner.load(key)
    }
    fn list(&self, kind: RecordKind) -> Result<Vec<(String, Versioned<Record>)>, StoreError> {
        self.inner.list(kind)
    }
    fn compare_and_swap(
        &self,
        key: &Key,
        expected: Option<Version>,
        new: Option<Record>,
    ) -> Result<Cas, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.compare_and_swap(key, expected, new)
    }
    fn delete(&self, key: &Key) -> Result<bool, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(key)
    }
    fn names(&self, kind: RecordKind) -> Result<Vec<String>, StoreError> {
        self.inner.names(kind)
    }
}

fn site_with_claim(dir: &Path, uses: u32) -> ClaimToken {
    let mut rng = SeededRandom::new(1);
    let site = Site::create(
        FileStore::open(dir).unwrap(),
        &SiteConfig::new("west"),
        NOW,
        &mut rng,
    )
    .unwrap();
    site.create_claim_token(&TokenOptions::claim().uses(uses), NOW, &mut rng)
        .unwrap()
}

fn request(token: &ClaimToken, site_id: &str) -> RedeemRequest {
    RedeemRequest {
        claim: token.name.clone(),
        password: token.password.expose().as_bytes().to_vec(),
        site_id: site_id.to_owned(),
        site_version: VERSION.to_owned(),
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_redemption_replaces_the_claim_file_once_and_writes_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("west");
    let token = site_with_claim(&dir, 2);
    let claim_file = dir.join("claim").join(format!("{}.json", token.name));
    let store = Counting {
        inner: FileStore::open(&dir).unwrap(),
        writes: AtomicUsize::new(0),
    };
    let site = Site::open(&store).unwrap();
    let mut rng = SeededRandom::new(2);
    site.redeem_claim(&request(&token, "east-site-id"), NOW, &mut rng)
        .unwrap();
    assert_eq!(store.writes.load(Ordering::SeqCst), 1);
    assert_eq!(files(&dir.join("issued")), Vec::<String>::new());
    assert_eq!(files(&dir.join("claim")), [format!("{}.json", token.name)]);

    // That one file holds the spent use and the certificate.
    let issued = site.issued().unwrap();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].common_name, "east-site-id");
    let text = fs::read_to_string(&claim_file).unwrap();
    assert!(text.contains("\"uses-remaining\": 1"), "{text}");
    assert!(text.contains(&issued[0].serial), "{text}");
    assert!(
        text.contains(&format!("\"schema-version\": {CLAIM_RECORD_SCHEMA}")),
        "{text}"
    );
}

#[test]
fn claim_files_from_before_schema_2_still_read_and_redeem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("west");
    let token = site_with_claim(&dir, 3);
    let claim_file = dir.join("claim").join(format!("{}.json", token.name));
    // The claim file as an older version wrote it: no schema, no
    // certificates; the certificate it issued is an issued record.
    let mut json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&claim_file).unwrap()).unwrap();
    let record = json["record"].as_object_mut().unwrap();
    record.remove("schema-version").unwrap();
    record.remove("issued").unwrap();
    record.insert("uses-remaining".into(), 2.into());
    record.insert("claims-made".into(), 1.into());
    fs::write(&claim_file, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    let store = FileStore::open(&dir).unwrap();
    let old_issue = IssuedRecord {
        serial: "7F01".into(),
        common_name: "north-site-id".into(),
        via: IssuedVia::Claim {
            name: token.name.clone(),
        },
        ca_generation: 1,
        issued_at: NOW,
        not_after: NOW + time::Duration::days(365),
    };
    let done = store
        .compare_and_swap(
            &Key::new(RecordKind::Issued, "7F01"),
            None,
            Some(Record::Issued(old_issue.clone())),
        )
        .unwrap();
    assert_eq!(done, Cas::Done(Some(1)));

    let site = Site::open(store).unwrap();
    let claim = &site.claims().unwrap()[0];
    assert_eq!((claim.schema_version, claim.uses_remaining), (1, Some(2)));
    assert!(claim.issued.is_empty());
    assert_eq!(site.issued().unwrap(), std::slice::from_ref(&old_issue));

    let mut rng = SeededRandom::new(2);
    site.redeem_claim(&request(&token, "east-site-id"), NOW, &mut rng)
        .unwrap();
    let claim = &site.claims().unwrap()[0];
    assert_eq!(
        (
            claim.schema_version,
            claim.uses_remaining,
            claim.claims_made
        ),
        (CLAIM_RECORD_SCHEMA, Some(1), 2)
    );
    let issued = site.issued().unwrap();
    assert_eq!(issued.len(), 2);
    assert!(issued.contains(&old_issue));
}

#[test]
fn a_claim_file_of_a_newer_schema_is_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("west");
    let token = site_with_claim(&dir, 1);
    let claim_file = dir.join("claim").join(format!("{}.json", token.name));
    let text = fs::read_to_string(&claim_file).unwrap();
    let newer = text.replace(
        &format!("\"schema-version\": {CLAIM_RECORD_SCHEMA}"),
        &format!("\"schema-version\": {}", CLAIM_RECORD_SCHEMA + 1),
    );
    assert_ne!(newer, text);
    fs::write(&claim_file, newer).unwrap();
    let site = Site::open(FileStore::open(&dir).unwrap()).unwrap();
    let mut rng = SeededRandom::new(2);
    let err = site
        .redeem_claim(&request(&token, "east-site-id"), NOW, &mut rng)
        .unwrap_err();
    let RedeemError::Store {
        source: StoreError::Corrupt {
            location, reason, ..
        },
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(location, &claim_file.display().to_string());
    assert!(
        reason.starts_with(&format!(
            "the claim record has schema version {}; this version reads up to {CLAIM_RECORD_SCHEMA} (it was written by a newer skupper-token)",
            CLAIM_RECORD_SCHEMA + 1
        )),
        "{reason}"
    );
    // Nothing was written over it.
    assert!(fs::read_to_string(&claim_file)
        .unwrap()
        .contains(&format!("\"schema-version\": {}", CLAIM_RECORD_SCHEMA + 1)));
}
