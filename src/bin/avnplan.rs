//! The `avnplan` command line (feature `cli`); see `CONTRACT.md`.
fn main() {}
