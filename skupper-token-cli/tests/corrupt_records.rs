//! A record file that cannot be read back (truncated, emptied, hand-edited)
//! is named with its file, can be deleted without being read, and does not
//! hide the other records from a listing.

// Tests start processes and make files.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::fs;
use std::path::Path;

use skupper_token::random::SeededRandom;
use skupper_token::site::{LinkOptions, Site, SiteConfig, SiteError, TokenOptions};
use skupper_token::store::{Key, Listing, RecordKind, Store, StoreError, Unreadable};
use skupper_token_cli::file_store::FileStore;
use time::macros::datetime;
use time::OffsetDateTime;

fn now() -> OffsetDateTime {
    datetime!(2025-06-01 12:00 UTC)
}

/// Cuts the file at `path` in half, as a crash of a careless editor would.
fn truncate(path: &Path) {
    let bytes = fs::read(path).unwrap();
    fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

fn corrupt_error(e: &StoreError) -> (&Key, &str) {
    match e {
        StoreError::Corrupt { key, location, .. } => (key, location.as_str()),
        other => panic!("not a corrupt record: {other:?}"),
    }
}

#[test]
fn corrupt_records_are_listed_apart_and_deleted_unread() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = SeededRandom::new(5);
    let west = Site::create(
        FileStore::open(tmp.path().join("west")).unwrap(),
        &SiteConfig::new("west"),
        now(),
        &mut rng,
    )
    .unwrap();
    for name in ["c1", "c2"] {
        west.create_token(&TokenOptions::claim().name(name), now(), &mut rng)
            .unwrap();
    }
    let c2 = Key::new(RecordKind::Claim, "c2");
    let c2_file = west.store().path_of(&c2).unwrap();
    truncate(&c2_file);

    // Reading every claim fails, naming the record and its file.
    let e = match west.claims() {
        Err(SiteError::Store(e)) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(corrupt_error(&e), (&c2, c2_file.to_str().unwrap()));
    assert!(
        e.to_string().starts_with(&format!(
            "record claim \"c2\" in {} is corrupt: ",
            c2_file.display()
        )),
        "{e}"
    );
    // The store names it without reading it; a listing sets it apart.
    assert_eq!(west.store().names(RecordKind::Claim).unwrap(), ["c1", "c2"]);
    let Listing {
        records,
        unreadable,
    } = west.claims_listing().unwrap();
    assert_eq!(
        records.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["c1"]
    );
    assert_eq!(unreadable, [Unreadable { key: c2, error: e }]);

    // Revoking access does not need to read the claims it voids.
    let revoked = west.revoke_access(now(), &mut rng).unwrap();
    assert_eq!(revoked.claims_deleted, 2);
    assert!(!c2_file.exists());
    assert_eq!(west.claims().unwrap(), []);

    // A corrupt claim and a corrupt link are deleted without being read.
    west.create_token(&TokenOptions::claim().name("c3"), now(), &mut rng)
        .unwrap();
    let c3_file = west
        .store()
        .path_of(&Key::new(RecordKind::Claim, "c3"))
        .unwrap();
    fs::write(&c3_file, "").unwrap();
    assert_eq!(west.delete_claim("c3"), Ok(true));
    assert!(!c3_file.exists());
    assert_eq!(west.delete_claim("c3"), Ok(false));

    let east = Site::create(
        FileStore::open(tmp.path().join("east")).unwrap(),
        &SiteConfig::new("east"),
        now(),
        &mut rng,
    )
    .unwrap();
    let cert = west
        .create_token(&TokenOptions::cert(), now(), &mut rng)
        .unwrap();
    east.add_link(cert.encode().as_bytes(), &LinkOptions::default(), now())
        .unwrap();
    let link1 = Key::new(RecordKind::Link, "link1");
    let link1_file = east.store().path_of(&link1).unwrap();
    truncate(&link1_file);
    let listing = east.links_listing().unwrap();
    assert_eq!(listing.records, []);
    assert_eq!(listing.unreadable.len(), 1);
    assert_eq!(
        corrupt_error(&listing.unreadable[0].error),
        (&link1, link1_file.to_str().unwrap())
    );
    assert_eq!(east.status().unwrap().linked_sites, 0);
    assert_eq!(east.delete_link("link1"), Ok(()));
    assert!(!link1_file.exists());
    assert_eq!(
        east.delete_link("link1"),
        Err(SiteError::NoSuchLink {
            name: "link1".into()
        })
    );
}
