fn main() {}
mod imaging;
