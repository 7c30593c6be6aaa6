//! The one integration-test binary: each file is one area.
mod anatomy;
mod checker;
mod cli;
mod data;
mod degenerate;
mod dicom;
mod fuzz_corpus;
mod guidance;
mod imaging;
mod io;
mod phantom;
mod planning;
mod recon;
mod registration;
mod render;
mod surface;
mod uncertainty;
