//! The broadcast logic in plain safe Rust, with no Asterisk types: the live
//! broadcasts and their claim state machine, the application filter, the
//! dialplan argument parsing, the delivery shuffle and the counters. Unit-tested with
//! `cargo test` alone.

pub mod args;
pub mod filter;
pub mod liveness;
pub mod registry;
pub mod shuffle;
pub mod stats;
pub mod text;
