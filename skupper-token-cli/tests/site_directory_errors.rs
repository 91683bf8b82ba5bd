//! A site directory that cannot be read is a storage error (exit code 5)
//! naming the path and the operating system's error, not "no site in
//! namespace" (exit code 3), which would send the user off to `init`.

// Tests start processes and make files.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::Command;

use common::{Home, Out, BIN};

const COMMANDS: [&[&str]; 4] = [
    &["status"],
    &["token", "status"],
    &["link", "status"],
    &["link", "delete", "link1"],
];

fn run_with_home(home: &Path, args: &[&str], as_nobody: bool) -> Out {
    let mut cmd = if as_nobody {
        // Root reads any directory whatever its mode; the user nobody
        // does not.
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        cmd
    } else {
        Command::new(BIN)
    };
    cmd.arg("--home")
        .arg(home)
        .args(["-n", "west"])
        .args(args)
        .env_remove("SKUPPER_TOKEN_HOME")
        .env_remove("SKUPPER_TOKEN_NAMESPACE");
    let output = cmd.output().expect("run skupper-token");
    Out::described(output, &args.join(" "))
}

#[test]
fn a_home_below_a_regular_file_is_a_storage_error() {
    let dir = Home::new();
    let file = dir.file("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let home = file.join("sites");
    for args in COMMANDS {
        let out = run_with_home(&home, args, false);
        assert_eq!(out.code, 5, "{out}");
        assert_eq!(
            out.stderr,
            format!(
                "error: cannot read the site in {}/west/site: Not a directory (os error 20)\n\
                 part of that path is a file, not a directory: check --home and SKUPPER_TOKEN_HOME\n",
                home.display()
            ),
            "{out}"
        );
    }
}

#[test]
fn an_unreadable_home_is_a_storage_error() {
    let home = Home::new();
    home.init("west");
    let sites = home.path().join("sites");
    let as_root = std::fs::metadata(home.path()).unwrap().uid() == 0;
    // As root, the user nobody cannot enter the root-owned 0700 home; as
    // anyone else, its owner cannot enter it with mode 0000.
    let mode = if as_root { 0o700 } else { 0o000 };
    std::fs::set_permissions(&sites, std::fs::Permissions::from_mode(mode)).unwrap();
    for args in COMMANDS {
        let out = run_with_home(&sites, args, as_root);
        assert_eq!(out.code, 5, "{out}");
        assert_eq!(
            out.stderr,
            format!(
                "error: cannot read the site in {}/west/site: Permission denied (os error 13)\n\
                 check that this user may read that directory and every one above it (or give another --home)\n",
                sites.display()
            ),
            "{out}"
        );
    }
    if !as_root {
        std::fs::set_permissions(&sites, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    // The site is still there for whoever may read it.
    home.ok("west", &["token", "status"]);
}
