//! (module anatomy: being written)
