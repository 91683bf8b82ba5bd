//! A record file that cannot be read back (truncated, emptied, hand-edited)
//! is named with its file and what to do about it, can be deleted without
//! being read (`link delete`, `token delete`), does not hide the other
//! records from `status`, `link status` and `token status`, and a corrupt
//! site record is not silently replaced by `init`.

// Tests start processes and make files.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::fs;
use std::path::Path;

use skupper_token::random::SeededRandom;
use skupper_token::site::{LinkError, LinkOptions, Site, SiteConfig, TokenOptions};
use skupper_token::store::{Key, Listing, RecordKind, Store, StoreError, Unreadable};
use skupper_token_cli::file_store::FileStore;
use time::macros::datetime;
use time::OffsetDateTime;

use common::Home;

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
    let e = west.claims().unwrap_err();
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
    east.add_link(
        cert.encode().as_bytes(),
        &LinkOptions::default(),
        now(),
        &mut SeededRandom::new(7),
    )
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
    assert_eq!(east.status(now()).unwrap().linked_sites, 0);
    assert_eq!(east.delete_link("link1"), Ok(()));
    assert!(!link1_file.exists());
    assert_eq!(
        east.delete_link("link1"),
        Err(LinkError::NoSuchLink {
            name: "link1".into()
        })
    );
}

#[test]
fn link_commands_report_and_delete_a_corrupt_link() {
    let home = Home::new();
    for ns in ["west", "north", "east"] {
        home.init(ns);
    }
    let to_west = home.token("west", "west.yaml", &["-t", "cert"]);
    let to_north = home.token("north", "north.yaml", &["-t", "cert"]);
    for token in [&to_west, &to_north] {
        home.ok("east", &["link", "create", token.to_str().unwrap()]);
    }
    let file = home.site_dir("east").join("link/link1.json");
    fs::write(&file, "{\"version\": 1, \"rec").unwrap();
    let not_running = "site not running: start it with 'skupper-token -n east serve'";
    let error = format!(
        "record link \"link1\" in {} is corrupt: EOF while parsing a string at line 1 column 19",
        file.display()
    );
    let hint = "remove it with 'skupper-token -n east link delete link1', then create the link again from a new token";

    // The other link is still reported; the damaged one is named.
    let out = home.run("east", &["link", "status"]);
    assert_eq!(out.code, 5, "{out}");
    assert_eq!(
        out.stdout,
        format!(
            "Links created from this site:\n  \
             Link link2 not connected ({not_running})\n  \
             Link link1 cannot be read: its record is corrupt\n\
             Current links from other sites that are connected:\n  \
             Unknown ({not_running})\n"
        ),
        "{out}"
    );
    assert_eq!(
        out.stderr,
        format!("error: 1 link record cannot be read: {error}\n{hint}\n"),
        "{out}"
    );
    let out = home.run("east", &["-o", "json", "link", "status"]);
    assert_eq!(out.code, 5, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["outgoing"][0]["name"], "link2");
    assert_eq!(
        json["unreadable"],
        serde_json::json!([{"name": "link1", "error": error}])
    );

    let out = home.run("east", &["status"]);
    assert_eq!(out.code, 5, "{out}");
    assert_eq!(
        out.stdout,
        "Skupper is enabled for namespace \"east\" in interior mode. It is not linked to any other sites.\n",
        "{out}"
    );
    assert_eq!(
        out.stderr,
        format!(
            "note: {not_running} (links are only live while it runs)\n\
             error: 1 link record cannot be read: {error}\n{hint}\n"
        ),
        "{out}"
    );

    let out = home.run("east", &["link", "status", "link1"]);
    assert_eq!(out.code, 5, "{out}");
    assert_eq!(out.stderr, format!("error: {error}\n{hint}\n"), "{out}");

    // Creating a link needs every link's record (to refuse a second link
    // to one site): it says which one to remove.
    let out = home.run("east", &["link", "create", to_west.to_str().unwrap()]);
    assert_eq!(out.code, 5, "{out}");
    assert_eq!(out.stderr, format!("error: {error}\n{hint}\n"), "{out}");

    let out = home.ok("east", &["link", "delete", "link1"]);
    assert_eq!(out.stdout, "Link 'link1' has been removed\n");
    assert!(!file.exists());
    let out = home.ok("east", &["link", "status"]);
    assert!(!out.stdout.contains("link1"), "{out}");
    home.ok("east", &["link", "create", to_west.to_str().unwrap()]);
}

#[test]
fn token_delete_voids_a_claim_even_when_its_record_is_corrupt() {
    let home = Home::new();
    let port = home.init("west");
    home.init("east");
    let c1 = home.token("west", "c1.yaml", &["--name", "c1"]);
    home.token("west", "c2.yaml", &["--name", "c2"]);
    let file = home.site_dir("west").join("claim/c2.json");
    fs::write(&file, "").unwrap();
    let error = format!(
        "record claim \"c2\" in {} is corrupt: EOF while parsing a value at line 1 column 0",
        file.display()
    );
    let hint = "void it with 'skupper-token -n west token delete c2', then create a new token if one is still needed";

    let out = home.run("west", &["token", "status"]);
    assert_eq!(out.code, 5, "{out}");
    assert!(out.stdout.starts_with("Claim tokens:\nNAME "), "{out}");
    assert!(out.stdout.contains("\nc1 "), "{out}");
    assert!(
        out.stdout.ends_with(
            "\nClaim token c2 cannot be read: its record is corrupt\nNo certificates issued by the current CA.\n"
        ),
        "{out}"
    );
    assert_eq!(
        out.stderr,
        format!("error: 1 claim record cannot be read: {error}\n{hint}\n"),
        "{out}"
    );

    let out = home.ok("west", &["token", "delete", "c2"]);
    assert_eq!(
        out.stdout,
        "Token 'c2' has been removed: its claim can no longer be redeemed\n"
    );
    assert!(!file.exists());
    let out = home.run("west", &["token", "delete", "c2"]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        out.stderr,
        "error: No such claim token \"c2\": this site has no outstanding claim of that name\n\
         'skupper-token -n west token status' lists the outstanding claim tokens; a cert token has no claim: revoke it with 'skupper-token -n west revoke-access --site c2'\n",
        "{out}"
    );

    // A deleted claim's token no longer links.
    home.ok("west", &["token", "delete", "c1"]);
    assert_eq!(home.claims("west"), Vec::<String>::new());
    let _daemon = home.serve("west", port);
    let out = home.run("east", &["link", "create", c1.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr
            .starts_with("error: Failed to redeem claim: No such claim"),
        "{out}"
    );
}

#[test]
fn init_refuses_to_replace_a_site_whose_record_is_corrupt() {
    let home = Home::new();
    home.init("west");
    home.token("west", "t.yaml", &["--name", "kept"]);
    let file = home.site_dir("west").join("site/site.json");
    fs::write(&file, "").unwrap();
    let error = format!(
        "record site \"site\" in {} is corrupt: EOF while parsing a value at line 1 column 0",
        file.display()
    );
    let hint = format!(
        "restore {} from a backup, or replace the site (losing its links, claims and CA) with 'skupper-token -n west init --force'",
        file.display()
    );

    let out = home.run("west", &["init"]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        out.stderr,
        format!(
            "error: a site already exists in namespace \"west\" but cannot be opened: {error}\n{hint}\n"
        ),
        "{out}"
    );
    assert_eq!(fs::read(&file).unwrap(), b"", "left as it was");
    assert!(home.site_dir("west").join("claim/kept.json").is_file());

    let out = home.run("west", &["status"]);
    assert_eq!(out.code, 5, "{out}");
    assert_eq!(out.stderr, format!("error: {error}\n{hint}\n"), "{out}");

    home.ok("west", &["init", "--force"]);
    home.ok("west", &["status"]);
    assert!(!home.site_dir("west").join("claim/kept.json").exists());
}

/// A site directory whose site record is gone but which still holds claims:
/// `init` refuses to make a new site over them; `init --force` does.
#[test]
fn init_refuses_to_replace_records_whose_site_record_is_missing() {
    let home = Home::new();
    home.init("west");
    home.token("west", "t.yaml", &["--name", "kept"]);
    let file = home.site_dir("west").join("site/site.json");
    fs::remove_file(&file).unwrap();

    let out = home.run("west", &["init"]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        out.stderr,
        format!(
            "error: namespace \"west\" has no site record ({} is missing) but holds 1 record(s) of a site (claims, links or certificates) in {}\n\
             move them away if they are still needed, or replace them with a new site with 'init --force'\n",
            file.display(),
            home.site_dir("west").display()
        ),
        "{out}"
    );
    assert!(home.site_dir("west").join("claim/kept.json").is_file());

    home.ok("west", &["init", "--force"]);
    assert!(!home.site_dir("west").join("claim/kept.json").exists());
}
