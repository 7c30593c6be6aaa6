fn main() {}
mod io;
