//! The one integration-test binary: each file is one area.
mod anatomy;
mod imaging;
mod io;
mod phantom;
mod recon;
mod render;
mod surface;
