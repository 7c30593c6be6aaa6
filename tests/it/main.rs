fn main() {}
mod surface;
