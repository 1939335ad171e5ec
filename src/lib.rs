//! res_stasis_broadcast_rs: an Asterisk module that offers an incoming call
//! to many ARI applications at once and hands it to the first that claims it.
//!
//! Layers, from the top (each uses only those below it):
//! - `entry`: every `extern "C"` function Asterisk calls (load, unload,
//!   reload, the application, the optional API, HTTP, CLI, Prometheus,
//!   sorcery, the sleep condition), each a few lines through `guard` into
//!   safe code; it hands these functions down for registering;
//! - `lifecycle`: load, unload, reload: makes, registers and drops the
//!   module's state;
//! - `app`, `claim`, `cli`, `metrics`, `events`: the module's behaviour,
//!   safe Rust over `host`, given the state;
//! - `state`: the one value holding everything the module keeps (registry,
//!   counters, settings, endpoint, registrations), made at load and dropped
//!   at unload, and its one accessor;
//! - `waker`: what wakes a broadcast's waiting channel when a claim wins;
//! - `endpoint`: who serves the claim (ARI's route, the module's node in
//!   ARI's tree, or its HTTP handler) and the module-served API description;
//! - `guard`: the panic guard;
//! - `ari_auth`, `claim_mode`, `api_docs`, `throttle`: ARI's authentication,
//!   the choice of claim endpoint, ARI's API description of events, a log
//!   throttle, all pure;
//! - `broadcast` and `config`: the pure logic (registry, filter, arguments,
//!   shuffle, counters, settings), unit-tested without Asterisk;
//! - `ari_types`: plain request data that `ari_auth` and `host` both speak;
//! - `host`: the only `unsafe` code besides `ffi`, thin safe wrappers over
//!   Asterisk. What it reads for a caller comes back in the caller's own
//!   types (e.g. through `host::config::FromCategory`) or in `ari_types`;
//! - `ffi`: bindings generated from the Asterisk headers, and the C shim.

pub mod api_docs;
pub mod ari_auth;
pub mod ari_types;
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
mod entry;
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
mod throttle;
// Counting calls into the module, for unload (used by `host`; pure).
mod in_flight;
#[cfg(not(test))]
mod state;
#[cfg(not(test))]
mod waker;
