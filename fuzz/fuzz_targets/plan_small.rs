#![no_main]
//! Fuzz target `plan_small`: see `fuzz/src/entries.rs`.
use libfuzzer_sys::fuzz_target;

#[path = "../src/entries.rs"]
mod entries;

fuzz_target!(|data: &[u8]| entries::plan_small(data));
