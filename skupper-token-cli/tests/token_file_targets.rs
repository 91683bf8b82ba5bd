//! `token create PATH` writes to what is at PATH the way a shell's `>`
//! would: through a named pipe to its reader, through a device, through a
//! symbolic link to its target (replaced atomically), and refuses a
//! directory. A token that could not be written leaves no redeemable claim.

// Tests start processes and make files.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::fs;
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Home, Out};

fn token_create(home: &Home, path: &Path) -> Out {
    home.run("west", &["token", "create", path.to_str().unwrap()])
}

fn assert_is_token(text: &str) {
    assert!(
        text.starts_with("apiVersion: v1\n") && text.contains("kind: Secret\n"),
        "not a token file:\n{text}"
    );
}

#[test]
fn a_named_pipe_is_written_through_to_its_reader() {
    let home = Home::new();
    home.init("west");
    let fifo = home.file("pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            fs::File::open(&fifo)
                .and_then(|mut f| f.read_to_string(&mut text))
                .expect("read the pipe");
            text
        })
    };
    let out = token_create(&home, &fifo);
    assert_eq!(out.code, 0, "{out}");
    // Checked before waiting for the reader: had the pipe been replaced,
    // its reader would wait for a writer forever.
    assert!(
        fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(),
        "still a pipe"
    );
    assert_is_token(&reader.join().expect("reader"));
    // The message is not mixed into what was written.
    assert_eq!(out.stdout, "", "{out}");
    assert_eq!(
        out.stderr,
        format!("Token written to {}\n", fifo.display()),
        "{out}"
    );
    assert_eq!(home.claims("west").len(), 1);
}

#[test]
fn dev_stdout_is_standard_output() {
    let home = Home::new();
    home.init("west");
    let out = token_create(&home, Path::new("/dev/stdout"));
    assert_eq!(out.code, 0, "{out}");
    assert_is_token(&out.stdout);
    assert_eq!(out.stderr, "Token written to /dev/stdout\n", "{out}");
}

#[test]
fn a_symbolic_link_is_followed_and_its_target_replaced() {
    let home = Home::new();
    home.init("west");
    fs::create_dir(home.file("tokens")).unwrap();
    let target = home.file("tokens/real.yaml");
    fs::write(&target, "old content\n").unwrap();
    let link = home.file("link.yaml");
    std::os::unix::fs::symlink("tokens/real.yaml", &link).unwrap();

    let out = token_create(&home, &link);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        out.stdout,
        format!("Token written to {}\n", link.display()),
        "{out}"
    );
    let meta = fs::symlink_metadata(&link).unwrap();
    assert!(meta.file_type().is_symlink(), "the link stays a link");
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("tokens/real.yaml"));
    assert_is_token(&fs::read_to_string(&target).unwrap());
    let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let names: Vec<_> = fs::read_dir(home.file("tokens"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["real.yaml"], "no temporary file left");

    // A link to a file that does not exist yet creates the file.
    let dangling = home.file("dangling.yaml");
    std::os::unix::fs::symlink("tokens/new.yaml", &dangling).unwrap();
    let out = token_create(&home, &dangling);
    assert_eq!(out.code, 0, "{out}");
    assert!(fs::symlink_metadata(&dangling)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_is_token(&fs::read_to_string(home.file("tokens/new.yaml")).unwrap());
    assert_eq!(home.claims("west").len(), 2);
}

#[test]
fn a_directory_is_refused_before_anything_is_made() {
    let home = Home::new();
    home.init("west");
    let dir = home.file("tok");
    fs::create_dir(&dir).unwrap();
    let shown = dir.display();
    for (given, message) in [
        (
            format!("{shown}"),
            format!("error: cannot write the token: {shown} is a directory: give the name of a file (for example {shown}/secret.yaml)\n"),
        ),
        (
            format!("{shown}/"),
            format!("error: cannot write the token: {shown}/ is a directory: give the name of a file (for example {shown}/secret.yaml)\n"),
        ),
        (
            format!("{shown}/missing/"),
            format!("error: cannot write the token: {shown}/missing/ ends with '/', so it names a directory: give the name of a file\n"),
        ),
        (
            format!("{shown}/missing/secret.yaml"),
            format!("error: cannot write the token: cannot create {shown}/missing/secret.yaml: the directory {shown}/missing does not exist\n"),
        ),
    ] {
        let out = token_create(&home, Path::new(&given));
        assert_eq!(out.code, 2, "{out}");
        assert_eq!(out.stderr, message, "{out}");
        assert_eq!(out.stdout, "", "{out}");
    }
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "nothing written");
    assert_eq!(home.claims("west"), Vec::<String>::new(), "no claim made");
}

#[test]
fn a_full_device_fails_with_exit_5_and_voids_the_claim() {
    let home = Home::new();
    home.init("west");
    let out = token_create(&home, Path::new("/dev/full"));
    assert_eq!(out.code, 5, "{out}");
    assert_eq!(
        out.stderr,
        "error: cannot write the token to /dev/full: No space left on device (os error 28)\n",
        "{out}"
    );
    assert!(
        fs::symlink_metadata("/dev/full")
            .unwrap()
            .file_type()
            .is_char_device(),
        "/dev/full is still a device"
    );
    assert_eq!(home.claims("west"), Vec::<String>::new(), "claim voided");

    // The same through standard output.
    let output = home
        .cmd("west")
        .args(["token", "create", "-"])
        .stdout(
            fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let out = Out::described(output, "token create - > /dev/full");
    assert_eq!(out.code, 5, "{out}");
    assert_eq!(
        out.stderr,
        "error: cannot write the token to standard output: No space left on device (os error 28)\n",
        "{out}"
    );
    assert_eq!(home.claims("west"), Vec::<String>::new(), "claim voided");
}
