//! The `memwire` command.
#![forbid(unsafe_code)]

fn main() {}
