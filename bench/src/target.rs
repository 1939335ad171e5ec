//! The three Asterisk instances a run compares, and the dialplan each runs.
//!
//! One instance per implementation, all started in the same run from the same
//! Asterisk 22.10.1 and configuration but for the broadcaster, all alive for
//! the whole run; the measurements then take turns, in rounds that rotate
//! which implementation goes first, so a slow spell of the (shared) machine
//! falls on all of them alike. Swapping modules inside one instance is not an
//! option: this module refuses to run beside the C modules, and memory growth
//! must be measured per implementation in a process of its own.

use crate::record::Tracker;
use asterisk_harness::{Asterisk, AsteriskConfig, Broadcaster};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

/// Which implementation an instance runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// res_stasis_broadcast_rs.so, this project.
    Ours,
    /// Asterisk's own res_stasis_broadcast.so + app_stasis_broadcast.so.
    Reference,
    /// No broadcaster: the same path built from plain `Stasis()` (see `dialplan`).
    Floor,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Ours, Kind::Reference, Kind::Floor];
    pub const BROADCASTERS: [Kind; 2] = [Kind::Ours, Kind::Reference];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::Reference => "reference",
            Kind::Floor => "floor",
        }
    }

    pub fn broadcasts(self) -> bool {
        self != Kind::Floor
    }
}

/// Dialplan time stamp with microseconds (`func_strings`).
const NOW: &str = "${STRFTIME(,,%s.%6q)}";

/// The `[bench]` context. Extensions:
/// - `claim`: broadcast (`SB` = StasisBroadcast arguments, with `won` as the
///   Stasis argument so the winner's StasisStart says so); a TIMEOUT falls
///   back to `Stasis(${APP},fallback)`. Floor: `Stasis(${APP},gate)`, which
///   the application ends with `continue` (its analogue of the claim), then
///   `Stasis(${APP},won)`.
/// - `fan`: `StasisBroadcast(0)` between two time stamps (floor: `NoOp()`).
/// - `tmo`: `StasisBroadcast(100)` between two time stamps (floor: `Wait(0.1)`).
/// - `hang`: a 10 s broadcast to the `watch-` applications (floor: `Stasis(${APP},gate)`).
///
/// `fan` and `tmo` store `<t0> <t1> <STASISSTATUS>` in `GLOBAL(T_<uniqueid>)`
/// and end in `Stasis(${APP},done)`, which tells the bench the call is over.
pub fn dialplan(kind: Kind) -> String {
    let (claim, fan, tmo, hang) = if kind.broadcasts() {
        (
            "StasisBroadcast(${SB})\n same => n,GotoIf($[\"${STASISSTATUS}\" = \"TIMEOUT\"]?fallback)\n same => n,Hangup()\n same => n(fallback),Stasis(${APP},fallback)",
            "StasisBroadcast(0)",
            "StasisBroadcast(100)",
            "StasisBroadcast(10000,^watch-)",
        )
    } else {
        (
            "Stasis(${APP},gate)\n same => n,Stasis(${APP},won)",
            "NoOp()",
            "Wait(0.1)",
            "Stasis(${APP},gate)",
        )
    };
    let timed = |step: &str| {
        format!(
            "Set(T0={NOW})\n same => n,{step}\n same => n,Set(GLOBAL(T_${{UNIQUEID}})=${{T0}} {NOW} ${{STASISSTATUS}})\n same => n,Stasis(${{APP}},done)"
        )
    };
    format!(
        "[bench]\n\
         exten => claim,1,{claim}\n same => n,Hangup()\n\
         exten => fan,1,{}\n same => n,Hangup()\n\
         exten => tmo,1,{}\n same => n,Hangup()\n\
         exten => hang,1,{hang}\n same => n,Hangup()\n",
        timed(fan),
        timed(tmo)
    )
}

/// One running instance and the record of its calls.
pub struct Target {
    pub kind: Kind,
    pub ast: Asterisk,
    pub tracker: Arc<Tracker>,
}

impl Target {
    /// Boots the three instances side by side.
    pub fn boot_all(module: &Path) -> Vec<Target> {
        std::thread::scope(|s| {
            let handles: Vec<_> = Kind::ALL
                .iter()
                .map(|&kind| s.spawn(move || Target::boot(kind, module)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("boot thread"))
                .collect()
        })
    }

    fn boot(kind: Kind, module: &Path) -> Target {
        Target::start(kind, config(kind, module))
    }

    /// Starts an instance of `kind` with `config` (see [`config`]).
    pub fn start(kind: Kind, config: AsteriskConfig) -> Target {
        Target {
            kind,
            ast: Asterisk::start(config),
            tracker: Arc::new(Tracker::default()),
        }
    }
}

/// The configuration every instance of `kind` runs with.
pub fn config(kind: Kind, module: &Path) -> AsteriskConfig {
    let broadcaster = match kind {
        Kind::Ours => Broadcaster::Ours(module.to_path_buf()),
        Kind::Reference => Broadcaster::Reference,
        Kind::Floor => Broadcaster::Neither,
    };
    AsteriskConfig::new(broadcaster)
        .dialplan(&dialplan(kind))
        .load("func_strings.so")
        // 100 applications' WebSockets plus the HTTP clients exceed the default 100 sessions.
        .http_general("sessionlimit = 1000")
        .label(kind.label())
}

/// Runs `round` on every target in each of `rounds` rounds, the first
/// target of a round rotating, so no implementation always goes first.
pub fn alternate<'t>(
    targets: &[&'t Target],
    rounds: usize,
    mut round: impl FnMut(&'t Target, usize),
) {
    for r in 0..rounds {
        for k in 0..targets.len() {
            round(targets[(r + k) % targets.len()], r);
        }
    }
}
