fn main() {}
mod recon;
