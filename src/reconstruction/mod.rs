//! (module reconstruction: being written)
