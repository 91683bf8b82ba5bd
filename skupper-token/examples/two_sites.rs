//! Two sites in one process: west issues a claim token, east links with it,
//! both report their status, then west revokes access and east's link
//! learns it from west's signed notice.
//!
//! Run with `cargo run -p skupper-token --example two_sites`.

// An example prints what it does; printing is its output.
#![allow(clippy::print_stdout)]

use skupper_token::harness::{HarnessError, Network};
use skupper_token::site::{LinkOptions, TokenOptions};
use skupper_token::time::Duration;

fn main() -> Result<(), HarnessError> {
    let net = Network::new(42); // seeded: every run prints the same ids
    let west = net.add_site("west")?;
    let east = net.add_site("east")?;
    println!("west is site {}, east is site {}", west.id(), east.id());

    // $ skupper token create secret.yaml --uses 1  (on west)
    let token = net.create_token("west", &TokenOptions::claim())?;
    println!(
        "Token written to secret.yaml ({} bytes)",
        token.encode().len()
    );

    // $ skupper link create secret.yaml  (on east)
    let link = net.create_link("east", token.encode().as_bytes(), &LinkOptions::default())?;
    println!(
        "Site configured to link to {} (name={})",
        link.target(),
        link.name
    );
    net.tick()?; // the network runs: east dials west, the link comes up
    net.run_for(Duration::seconds(10))?; // heartbeats keep it up

    println!("east$ link status: {}", net.link_status("east", "link1")?);
    println!("west$ status: {}", net.status("west")?);

    // $ skupper revoke-access  (on west)
    let revoked = net.revoke_access("west")?;
    println!(
        "west revoked access: CA generation {}, {} incoming link(s) dropped",
        revoked.ca_generation,
        revoked.incoming_dropped.len()
    );
    net.tick()?; // west's notice reaches east: its link is revoked
    println!("west$ status: {}", net.status("west")?);
    println!("east$ link status: {}", net.link_status("east", "link1")?);
    Ok(())
}
