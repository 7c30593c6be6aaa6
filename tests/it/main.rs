fn main() {}
mod phantom;
