#![no_main]
//! Fuzz target `dicom`: see `fuzz/src/entries.rs`.
use libfuzzer_sys::fuzz_target;

#[path = "../src/entries.rs"]
mod entries;

fuzz_target!(|data: &[u8]| entries::dicom(data));
