#![no_main]
//! Fuzz target `needle_json`: see `fuzz/src/entries.rs`.
use libfuzzer_sys::fuzz_target;

#[path = "../src/entries.rs"]
mod entries;

fuzz_target!(|data: &[u8]| entries::needle_json(data));
