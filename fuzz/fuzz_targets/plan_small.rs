#![no_main]
//! Fuzz target `plan_small`: see `fuzz/src/entries.rs`.
use libfuzzer_sys::fuzz_target;

#[path = "../src/entries.rs"]
mod entries;

fuzz_target!(init: entries::plan_small_init(), |data: &[u8]| entries::plan_small(data));
