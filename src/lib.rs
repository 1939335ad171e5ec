//! res_stasis_broadcast_rs: an Asterisk module that offers an incoming call
//! to many ARI applications at once and hands it to the first that claims it.
//!
//! Layers, from the bottom:
//! - `ffi`: bindings generated from the Asterisk headers, and the C shim;
//! - `host`: the only `unsafe` code, thin safe wrappers over `ffi`, and the
//!   `extern "C"` entry points (each through `guard`);
//! - `broadcast` and `config`: the pure logic (registry, filter, arguments,
//!   shuffle, counters, settings), unit-tested without Asterisk;
//! - `ari_auth` and `claim_mode`: ARI's authentication and the choice of
//!   claim endpoint, also pure, for `endpoint` (the module-served claim route);
//! - `api_docs`: completing ARI's API description of events and deciding
//!   whether the module serves it, also pure, for `endpoint`;
//! - `app`, `claim`, `endpoint`, `events`, `cli`, `metrics`, `lifecycle`: the module's behaviour,
//!   safe Rust over `host`.

pub mod api_docs;
pub mod ari_auth;
pub mod broadcast;
pub mod claim_mode;
pub mod config;

// Everything that touches Asterisk is left out of unit-test builds, which
// link no Asterisk.
#[cfg(not(test))]
mod app;
#[cfg(not(test))]
mod claim;
#[cfg(not(test))]
mod cli;
#[cfg(not(test))]
mod endpoint;
#[cfg(not(test))]
mod events;
#[cfg(not(test))]
mod ffi;
#[cfg(not(test))]
mod guard;
#[cfg(not(test))]
mod host;
#[cfg(not(test))]
mod lifecycle;
#[cfg(not(test))]
mod metrics;
