//! (module phantom: being written)
