fn main() {}
mod render;
