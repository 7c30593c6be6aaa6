//! The one integration-test binary: each file is one area.
mod imaging;
mod io;
mod surface;
