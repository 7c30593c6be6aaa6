//! (module render: being written)
