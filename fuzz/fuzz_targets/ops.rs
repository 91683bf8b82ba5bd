//! An arbitrary sequence of at most 32 operations over the in-memory
//! harness (four sites), with the model in `skupper_token_fuzz::ops`
//! checking every invariant after every step.
#![no_main]
// fuzz_target! expands to code that uses std::fs (clippy.toml bans it for the core).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use libfuzzer_sys::fuzz_target;
use skupper_token_fuzz::ops::{run, Script};

fuzz_target!(|script: Script| {
    run(&script);
});
