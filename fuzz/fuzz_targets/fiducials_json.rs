#![no_main]
//! Fuzz target `fiducials_json`: see `fuzz/src/entries.rs`.
use libfuzzer_sys::fuzz_target;

#[path = "../src/entries.rs"]
mod entries;

fuzz_target!(|data: &[u8]| entries::fiducials_json(data));
