//! A site kept in a store of your own: an append-only journal, as a
//! program that keeps its state in a log or a database table would write
//! it. Every change is one appended entry (key, version, new record or a
//! deletion); the current state of a key is its last entry.
//!
//! The `Store` contract, and how this store keeps it:
//!
//! - `compare_and_swap` is atomic: the version check and the append happen
//!   under one lock, so two handles never both win.
//! - A record is stored only under a key of its own kind.
//! - `list` returns one kind's live records, ordered by name.
//! - It never reports `Cas::Done` for a change it did not make: a claim's
//!   use is counted before its certificate is issued, so a store that lies
//!   here could grant more uses than the claim allows.
//!
//! Run with `cargo run -p skupper-token --example custom_store`; `cargo
//! test` runs it too.

// An example prints what it does; printing is its output.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use skupper_token::claim::RedeemRequest;
use skupper_token::random::SeededRandom;
use skupper_token::site::{Site, SiteConfig, TokenOptions};
use skupper_token::store::{Cas, Key, Record, RecordKind, Store, StoreError, Version, Versioned};
use skupper_token::time::{Duration, OffsetDateTime};
use skupper_token::token::Token;

/// One change: `record` is `None` for a deletion.
#[derive(Debug, Clone)]
struct Entry {
    key: Key,
    version: Version,
    record: Option<Record>,
}

/// An append-only journal of changes, with an index of where each key's
/// latest entry is.
#[derive(Debug, Default)]
struct Journal {
    entries: Vec<Entry>,
    latest: BTreeMap<Key, usize>,
}

impl Journal {
    /// The key's current record and version, if it exists.
    fn current(&self, key: &Key) -> Option<Versioned<Record>> {
        let entry = &self.entries[*self.latest.get(key)?];
        entry.record.clone().map(|record| Versioned {
            version: entry.version,
            record,
        })
    }
}

/// A [`Store`] over a [`Journal`]. Clone the `Arc` to give several site
/// handles the same store.
#[derive(Debug, Default)]
struct JournalStore {
    journal: Mutex<Journal>,
}

impl JournalStore {
    fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        // Each change is one push and one insert: a panic elsewhere cannot
        // leave the journal half-written.
        self.journal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many changes were appended.
    fn len(&self) -> usize {
        self.journal().entries.len()
    }

    /// A new store rebuilt from this one's journal alone, as a program
    /// reopening its log after a restart would: every key's latest entry
    /// wins.
    fn replayed(&self) -> JournalStore {
        let entries = self.journal().entries.clone();
        let mut journal = Journal::default();
        for entry in entries {
            let at = journal.entries.len();
            journal.latest.insert(entry.key.clone(), at);
            journal.entries.push(entry);
        }
        JournalStore {
            journal: Mutex::new(journal),
        }
    }
}

impl Store for JournalStore {
    fn load(&self, key: &Key) -> Result<Option<Versioned<Record>>, StoreError> {
        Ok(self.journal().current(key))
    }

    fn list(&self, kind: RecordKind) -> Result<Vec<(String, Versioned<Record>)>, StoreError> {
        let journal = self.journal();
        // The index is ordered by key, and keys by kind, then name.
        Ok(journal
            .latest
            .keys()
            .filter(|k| k.kind == kind)
            .filter_map(|k| journal.current(k).map(|v| (k.name.clone(), v)))
            .collect())
    }

    fn compare_and_swap(
        &self,
        key: &Key,
        expected: Option<Version>,
        new: Option<Record>,
    ) -> Result<Cas, StoreError> {
        if let Some(record) = &new {
            if record.kind() != key.kind {
                return Err(StoreError::WrongKind {
                    key: key.to_string(),
                    found: record.kind(),
                });
            }
        }
        let mut journal = self.journal();
        let current = journal.current(key).map(|v| v.version);
        if current != expected {
            return Ok(Cas::Conflict(current));
        }
        // Versions count up while the key exists; a key created again after
        // a deletion starts at 1.
        let version = current.map_or(1, |v| v + 1);
        let done = if new.is_some() { Some(version) } else { None };
        journal.entries.push(Entry {
            key: key.clone(),
            version,
            record: new,
        });
        let at = journal.entries.len() - 1;
        journal.latest.insert(key.clone(), at);
        Ok(Cas::Done(done))
    }

    fn delete(&self, key: &Key) -> Result<bool, StoreError> {
        let mut journal = self.journal();
        let Some(current) = journal.current(key) else {
            return Ok(false);
        };
        // A deletion is an entry too: replaying the journal deletes again.
        journal.entries.push(Entry {
            key: key.clone(),
            version: current.version + 1,
            record: None,
        });
        let at = journal.entries.len() - 1;
        journal.latest.insert(key.clone(), at);
        Ok(true)
    }

    fn names(&self, kind: RecordKind) -> Result<Vec<String>, StoreError> {
        let journal = self.journal();
        Ok(journal
            .latest
            .keys()
            .filter(|k| k.kind == kind && journal.current(k).is_some())
            .map(|k| k.name.clone())
            .collect())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(JournalStore::default());
    let now = OffsetDateTime::from_unix_timestamp(1_790_000_000)?;
    let mut rng = SeededRandom::new(5); // a real site uses OS randomness
    let west = Site::create(store.clone(), &SiteConfig::new("west"), now, &mut rng)?;
    println!("site {} created: {} journal entry", west.id(), store.len());

    // A claim token with two uses, redeemed twice (as the claims server
    // would for two linking sites), then refused.
    let token = west.create_token(&TokenOptions::claim().uses(2), now, &mut rng)?;
    let Token::Claim(claim) = token else {
        return Err("expected a claim token".into());
    };
    for (i, site) in ["east", "north", "south"].into_iter().enumerate() {
        let request = RedeemRequest {
            claim: claim.name.clone(),
            password: claim.password.expose().as_bytes().to_vec(),
            site_id: site.to_owned(),
            site_version: skupper_token::version::VERSION.to_owned(),
        };
        let at = now + Duration::seconds(i as i64);
        match west.redeem_claim(&request, at, &mut rng) {
            Ok(cert) => println!("{site}: redeemed, cert token {:?}", cert.name),
            Err(e) => println!("{site}: {} {}", e.http_status(), e.http_body().trim_end()),
        }
    }
    let record = &west.claims()?[0];
    assert_eq!(
        (record.claims_made, record.uses_remaining),
        (2, Some(0)),
        "exactly the claim's uses"
    );
    assert_eq!(west.issued()?.len(), 2);

    // The journal alone holds the site: replayed into a new store (as
    // after a restart), it opens as the same site with the same claims.
    let restarted = Site::open(store.replayed())?;
    assert_eq!(restarted.id(), west.id());
    assert_eq!(restarted.claims()?, west.claims()?);

    // A second handle on the same store sees everything.
    let again = Site::open(store.clone())?;
    assert_eq!(again.id(), west.id());
    let revoked = again.revoke_access(now + Duration::minutes(1), &mut rng)?;
    println!(
        "access revoked: CA generation {}, {} claim(s) deleted, {} journal entries",
        revoked.ca_generation,
        revoked.claims_deleted,
        store.len()
    );
    assert!(west.claims()?.is_empty());
    assert_eq!(west.record()?.ca_generation, 2);
    Ok(())
}

/// `cargo test` runs the example (see `[[example]]` in Cargo.toml).
#[test]
fn the_example_runs() {
    main().expect("the example runs");
}
