//! Integration-test harness: boots fully isolated real Asterisk instances inside
//! the Debian sid root made by `scripts/runtime.sh` and drives them over ARI
//! (HTTP with `ureq`, WebSocket events with `tungstenite`). Nothing async.
//!
//! Every instance has its own directories, HTTP port and control socket, so
//! tests may run in parallel threads of one test binary. No Asterisk process
//! outlives the test binary: instances are stopped on `Drop`, carry
//! `PR_SET_PDEATHSIG` (killed by the kernel if the test binary dies, even on
//! abort), and an `atexit` hook kills any still registered.
//!
//! Environment: `STASIS_BROADCAST_ROOT` (where the root is),
//! `STASIS_BROADCAST_KEEP=1` (keep instance dirs after stop, for debugging).
//!
//! Asterisk quirk: ARI refuses (409) a new channel id that is a prefix of a
//! live channel's id, so generated ids are fixed-width (`sbt<pid>_<n:06>_2`).

#![warn(missing_docs)]

mod app;
mod config;
mod http;
mod instance;
mod outbound;
mod runtime;

pub use app::{AriApp, RestResponse};
pub use config::{AriUser, AsteriskConfig, Broadcaster, BASE_MODULES};
pub use http::{basic_authorization, encode, AriHttp, Auth, Response};
pub use instance::{Asterisk, Exit, OriginateSpec, Originated};
pub use outbound::OutboundServer;
pub use runtime::Runtime;
