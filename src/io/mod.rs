//! (module io: being written)
