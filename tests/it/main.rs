fn main() {}
mod anatomy;
