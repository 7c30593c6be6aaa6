//! (module planning: being written)
