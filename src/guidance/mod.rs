//! (module guidance: being written)
