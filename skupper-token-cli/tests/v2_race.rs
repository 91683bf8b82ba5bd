//! Racing `token redeem` processes against one running `serve`: thirty
//! sites redeem one AccessToken that allows five redemptions, and exactly
//! five get a link, which connects; two processes redeeming the same file on the same
//! site redeem it once (Skupper's #2112).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::process::{Child, Stdio};

mod common;

use common::{Home, Out};

/// Starts `token redeem FILE` on `ns` of `home`, without waiting.
fn start_redeem(home: &Home, ns: &str, file: &str) -> Child {
    home.cmd(ns)
        .args(["token", "redeem", file])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start token redeem")
}

fn finish(child: Child, what: &str) -> Out {
    Out::described(child.wait_with_output().expect("wait"), what)
}

/// The outgoing links `ns` of `home` has stored.
fn outgoing(home: &Home, ns: &str) -> Vec<serde_json::Value> {
    home.ok(ns, &["-o", "json", "link", "status"]).json()["outgoing"]
        .as_array()
        .expect("a list of links")
        .clone()
}

#[test]
fn thirty_sites_race_for_five_redemptions_and_exactly_five_link() {
    let west = Home::new();
    let port = west.init("west");
    let _serve = west.serve("west", port);
    let token = west.file("west.yaml");
    let file = token.to_str().unwrap();
    west.ok(
        "west",
        &[
            "token",
            "issue",
            file,
            "--name",
            "for-many",
            "--redemptions-allowed",
            "5",
        ],
    );
    // Thirty sites, each in a home of its own.
    let sites: Vec<(Home, u16)> = (0..30)
        .map(|_| {
            let home = Home::new();
            let port = home.init("east");
            (home, port)
        })
        .collect();
    let children: Vec<Child> = sites
        .iter()
        .map(|(home, _)| start_redeem(home, "east", file))
        .collect();
    let outs: Vec<Out> = children
        .into_iter()
        .enumerate()
        .map(|(i, c)| finish(c, &format!("site {i}: token redeem")))
        .collect();

    let (won, lost): (Vec<usize>, Vec<usize>) = (0..outs.len()).partition(|&i| outs[i].code == 0);
    assert_eq!(
        won.len(),
        5,
        "{}",
        outs.iter().map(|o| o.to_string()).collect::<String>()
    );
    // Each winner's link connects once its site runs.
    let mut winners = Vec::new();
    for &i in &won {
        let (home, port) = &sites[i];
        let links = outgoing(home, "east");
        assert_eq!(links.len(), 1, "site {i}: {links:?}");
        assert_eq!(links[0]["name"], "link1");
        assert_eq!(links[0]["state"], "connecting", "site {i}: {links:?}");
        winners.push(home.serve("east", *port));
    }
    for &i in &won {
        sites[i]
            .0
            .ok("east", &["link", "status", "link1", "--wait", "20"]);
    }
    west.wait_for("west", &["status"], "It is linked to 5 other sites.");
    drop(winners);
    for &i in &lost {
        let out = &outs[i];
        assert_eq!(out.code, 1, "{out}");
        assert!(
            out.stderr.contains(
                "the AccessToken of link \"link1\" was not redeemed: Controller got failed response: 404 (Not Found) No such access granted"
            ),
            "{out}"
        );
        assert_eq!(
            outgoing(&sites[i].0, "east"),
            Vec::<serde_json::Value>::new()
        );
    }

    let status = west.ok("west", &["-o", "json", "token", "status"]).json();
    let grant = &status["grants"][0];
    assert_eq!(grant["name"], "for-many", "{status}");
    assert_eq!(grant["redemptions-made"], 5, "{status}");
    assert_eq!(grant["redemptions-allowed"], 5, "{status}");
    assert_eq!(grant["state"], "used up", "{status}");
    let row = west.ok("west", &["token", "status"]).stdout;
    let row = row
        .lines()
        .find(|l| l.starts_with("for-many "))
        .unwrap_or_else(|| panic!("{row}"));
    assert!(row.contains(" 5/5 "), "{row}");
}

#[test]
fn two_processes_redeeming_one_file_on_one_site_redeem_it_once() {
    let home = Home::new();
    let port = home.init("west");
    home.init("east");
    let _serve = home.serve("west", port);
    let token = home.file("west.yaml");
    let file = token.to_str().unwrap();
    // Two redemptions allowed: a second redemption would be granted, so
    // only east's own records can keep it from happening.
    home.ok(
        "west",
        &["token", "issue", file, "--redemptions-allowed", "2"],
    );
    let before = std::fs::read(&token).unwrap();
    let children = [
        start_redeem(&home, "east", file),
        start_redeem(&home, "east", file),
    ];
    let outs: Vec<Out> = children
        .into_iter()
        .map(|c| finish(c, "-n east token redeem"))
        .collect();
    let codes: Vec<i32> = outs.iter().map(|o| o.code).collect();
    let mut sorted = codes.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [0, 1], "{}{}", outs[0], outs[1]);
    let lost = &outs[codes.iter().position(|&c| c == 1).unwrap()];
    assert!(lost.stderr.contains("Already connected to \""), "{lost}");
    assert_eq!(outgoing(&home, "east").len(), 1);

    let status = home.ok("west", &["-o", "json", "token", "status"]).json();
    assert_eq!(status["grants"][0]["redemptions-made"], 1, "{status}");
    // The file is as it was: redeeming keeps nothing in it.
    assert_eq!(std::fs::read(&token).unwrap(), before);
}
