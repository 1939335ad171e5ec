//! What every integration test shares: where the built modules are, and
//! the two implementations a scenario can run against.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

pub use asterisk_harness::*;

/// The module under test: `$STASIS_BROADCAST_MODULE` (set by `make test`),
/// else the `make` output at the top of the repository.
pub fn our_module() -> PathBuf {
    let path = std::env::var_os("STASIS_BROADCAST_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("res_stasis_broadcast_rs.so"));
    assert!(path.is_file(), "module not built at {}: run `make test` (or `make` first)", path.display());
    path
}

/// The build with the fault-injection hook (`make test` builds it).
pub fn fault_module() -> PathBuf {
    let path = std::env::var_os("STASIS_BROADCAST_FAULT_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fault/release/libres_stasis_broadcast_rs.so"));
    assert!(path.is_file(), "fault-injection build missing at {}: run `make test`", path.display());
    path
}

pub fn ours() -> Broadcaster {
    Broadcaster::Ours(our_module())
}

/// Which implementation a scenario runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Implementation {
    Ours,
    Reference,
}

impl Implementation {
    pub fn broadcaster(self) -> Broadcaster {
        match self {
            Implementation::Ours => ours(),
            Implementation::Reference => Broadcaster::Reference,
        }
    }
}

pub const BOTH: [Implementation; 2] = [Implementation::Ours, Implementation::Reference];

pub const SECOND: Duration = Duration::from_secs(1);

/// The line of `module show like NAME` for NAME, if listed.
pub fn module_line(asterisk: &Asterisk, name: &str) -> Option<String> {
    asterisk
        .cli(&format!("module show like {name}"))
        .lines()
        .find(|line| line.starts_with(name))
        .map(str::to_owned)
}

pub fn is_running(asterisk: &Asterisk, name: &str) -> bool {
    module_line(asterisk, name).is_some_and(|line| line.contains(" Running") && !line.contains("Not Running"))
}

pub mod child;
pub mod docs;
pub mod memcheck;
pub mod servers;

/// The first release of each branch that ships Asterisk's own C implementation
/// (res_stasis_broadcast.so, app_stasis_broadcast.so) and ARI's claim route.
pub const C_IMPLEMENTATION_RELEASES: &[(u32, u32)] = &[(20, 20), (22, 10), (23, 4)];

/// Whether this runtime carries the C reference modules. On a release older
/// than the C implementation their absence is asserted, so a runtime that
/// should have them and lacks them fails instead of quietly testing less.
pub fn reference_present() -> bool {
    let runtime = Runtime::locate();
    let expected = runtime.at_least(C_IMPLEMENTATION_RELEASES);
    assert_eq!(
        runtime.has_reference(),
        expected,
        "{}: the C modules should {}be installed",
        runtime.asterisk_version(),
        if expected { "" } else { "not " }
    );
    if !expected {
        eprintln!("{}: no C reference on this release (asserted); the other half runs ours", runtime.asterisk_version());
    }
    expected
}

/// The other half of a side-by-side test: the C reference where the runtime
/// has it, else ours (with the reference's absence asserted).
pub fn reference_or_ours() -> Implementation {
    if reference_present() {
        Implementation::Reference
    } else {
        Implementation::Ours
    }
}

/// The headers a client acts on, names lower-case, in order.
pub fn significant_headers(response: &Response) -> Vec<(String, String)> {
    const NAMES: [&str; 8] = [
        "www-authenticate",
        "allow",
        "content-type",
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "connection",
    ];
    response
        .headers
        .iter()
        .filter(|(name, _)| NAMES.contains(&name.to_ascii_lowercase().as_str()))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
        .collect()
}
