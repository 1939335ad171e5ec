//! What every integration test shares: where the built modules are, and
//! the two implementations a scenario can run against.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

pub use asterisk_harness::*;

/// The repository's top directory (this package is tests/).
pub const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The module under test: `$STASIS_BROADCAST_MODULE`, which `make test` and
/// the version matrix set to what they have just built. There is no default:
/// a module found lying around may be older than the sources under test.
pub fn our_module() -> PathBuf {
    built_module("STASIS_BROADCAST_MODULE", "the module")
}

/// The build with the fault-injection hook: `$STASIS_BROADCAST_FAULT_MODULE`
/// (`make test` builds and sets it).
pub fn fault_module() -> PathBuf {
    built_module("STASIS_BROADCAST_FAULT_MODULE", "the fault-injection build")
}

/// The file `variable` names, which must be newer than every source it is built from.
fn built_module(variable: &str, what: &str) -> PathBuf {
    let path = std::env::var_os(variable).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{variable} is not set: run `make test`, which builds {what} and sets it (see README, Tests)")
    });
    let built = std::fs::metadata(&path)
        .and_then(|meta| meta.modified())
        .unwrap_or_else(|e| panic!("{variable}={}: {e}: run `make test`", path.display()));
    let top = PathBuf::from(REPO);
    // What cargo rebuilds the module for when it changes (build.rs and its rerun-if-changed).
    let newest = ["src", "include", "build.rs"]
        .iter()
        .flat_map(|name| files_under(&top.join(name)))
        .filter_map(|file| Some((std::fs::metadata(&file).ok()?.modified().ok()?, file)))
        .max()
        .expect("sources");
    assert!(
        built >= newest.0,
        "{variable}={} is older than {}: stale build, run `make test`",
        path.display(),
        newest.1.display()
    );
    path
}

fn files_under(path: &std::path::Path) -> Vec<PathBuf> {
    match std::fs::read_dir(path) {
        Ok(entries) => entries.flatten().flat_map(|entry| files_under(&entry.path())).collect(),
        Err(_) => vec![path.to_path_buf()],
    }
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

pub mod ari_facts;
pub mod child;
pub mod docs;
pub mod front_door;
pub mod memcheck;
pub mod servers;

/// The first release of each branch that ships Asterisk's own C implementation
/// (res_stasis_broadcast.so, app_stasis_broadcast.so) and ARI's claim route.
pub const C_IMPLEMENTATION_RELEASES: &[(u32, u32)] = &[(20, 20), (22, 10), (23, 4)];

/// Whether this runtime carries the C reference modules, asserted against
/// its version: a runtime that should have them and lacks them fails instead
/// of quietly testing less.
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
    expected
}

/// For the tests that run the live C module (named `*_vs_c_module`): they
/// exist only where the runtime has it (scripts/test-matrix.sh leaves them
/// out elsewhere with `--skip vs_c_module`), and fail if run anywhere else.
pub fn require_c_module() {
    assert!(
        reference_present(),
        "{}: no C module here; tests named *_vs_c_module run only where it exists (skip them with `--skip vs_c_module`)",
        Runtime::locate().asterisk_version()
    );
}

/// The log since `mark` once it holds a line containing `line`, waited for up
/// to 5 s; fails the test, with the log, if it never comes. Asterisk's logger
/// writes from one thread in the order the lines were logged, so by then every
/// line logged before that one is there too: to check that something was
/// *not* logged, wait for a line logged after it would have been (by the
/// same thread, or once that thread's work is known to be done), then look.
pub fn logged_through(asterisk: &Asterisk, mark: usize, line: &str) -> String {
    let deadline = 5 * SECOND;
    assert!(
        asterisk.wait_for_log_since(mark, line, deadline),
        "{line:?} not logged within {deadline:?}; the log since the mark:\n{}",
        asterisk.log_since(mark)
    );
    asterisk.log_since(mark)
}

/// The log since `mark`, once everything any thread logged before this call
/// is in it: logs a line now (reloading the dialplan, unchanged, which every
/// instance loads) and waits for it. For an absence check where no later
/// line of the same thread exists (a request answered by the HTTP server).
pub fn log_barrier(asterisk: &Asterisk, mark: usize) -> String {
    let now = asterisk.log_mark();
    asterisk.cli("module reload pbx_config.so");
    logged_through(asterisk, now, "Reloading module 'pbx_config.so'");
    asterisk.log_since(mark)
}

/// The log of a whole boot: `Asterisk Ready.` is the last line the thread
/// that loads the modules at startup logs, so an absence read from this is real.
pub fn boot_log(asterisk: &Asterisk) -> String {
    logged_through(asterisk, 0, "Asterisk Ready.")
}

/// The status `StasisBroadcast` left for the call whose unique id is `id`,
/// which the test dialplans put in `RESULT_<id>`; waits up to 10 s for it.
pub fn result(asterisk: &Asterisk, id: &str) -> Option<String> {
    asterisk.wait_for_global(&format!("RESULT_{id}"), 10 * SECOND)
}

/// Starts two things at once (typically two Asterisk instances, whose boots
/// take most of a test's time) and returns both.
pub fn at_once<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    std::thread::scope(|s| {
        let first = s.spawn(a);
        let second = s.spawn(b);
        (first.join().expect("first"), second.join().expect("second"))
    })
}

/// Every application in `claimants` claims `id` at the same moment (they
/// wait at one barrier, then send); their answers, in the order given.
pub fn race<'a>(claimants: impl IntoIterator<Item = &'a AriApp>, id: &str) -> Vec<Response> {
    let claimants: Vec<&AriApp> = claimants.into_iter().collect();
    let start = std::sync::Barrier::new(claimants.len());
    std::thread::scope(|s| {
        let claims: Vec<_> = claimants
            .iter()
            .map(|app| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    app.claim(id)
                })
            })
            .collect();
        claims.into_iter().map(|claim| claim.join().expect("claimant thread")).collect()
    })
}

/// The use count column of `module show like NAME`: Asterisk counts one
/// while a dialplan application of the module runs, the module itself one
/// per reference it holds.
pub fn use_count(asterisk: &Asterisk, name: &str) -> u32 {
    let line = module_line(asterisk, name).unwrap_or_else(|| panic!("{name} not listed"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let running = words.iter().position(|word| *word == "Running").unwrap_or_else(|| panic!("no Running column: {line}"));
    words[running - 1].parse().unwrap_or_else(|_| panic!("use count in {line:?}"))
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

/// The global variable the fault-injection build reads at every entry point
/// (src/guard.rs): the entry point it names panics once and clears it.
pub const INJECT_PANIC: &str = "STASISBROADCAST_INJECT_PANIC";

/// Makes `entry_point` (the name src/entry.rs gives `guarded`) panic the next
/// time Asterisk calls it. Only the fault-injection build reacts.
pub fn inject_panic(asterisk: &Asterisk, entry_point: &str) {
    let r = asterisk.ari().post(&format!("/asterisk/variable?variable={INJECT_PANIC}&value={}", encode(entry_point)), None);
    assert_eq!(r.status, 204, "set {INJECT_PANIC}={entry_point}: {}", r.body);
}

/// Makes `entry_point` wait 2 s inside the module, before it looks for the
/// module's state, the next time Asterisk calls it (the fault-injection
/// build logs `fault injection: <entry_point> waits` first). For unloading
/// while a call is inside.
pub fn inject_delay(asterisk: &Asterisk, entry_point: &str) {
    let r = asterisk
        .ari()
        .post(&format!("/asterisk/variable?variable=STASISBROADCAST_INJECT_DELAY&value={}", encode(entry_point)), None);
    assert_eq!(r.status, 204, "set STASISBROADCAST_INJECT_DELAY={entry_point}: {}", r.body);
}

/// The line number of the one line of `file` (relative to the repository)
/// that contains `needle`.
pub fn source_line(file: &str, needle: &str) -> usize {
    let text = std::fs::read_to_string(PathBuf::from(REPO).join(file)).expect(file);
    let found: Vec<usize> =
        text.lines().enumerate().filter(|(_, line)| line.contains(needle)).map(|(n, _)| n + 1).collect();
    assert_eq!(found.len(), 1, "{file}: lines containing {needle:?}: {found:?}");
    found[0]
}

/// An Asterisk log line at ERROR: (thread id, what follows "ERROR[tid][call id] ").
fn error_line(line: &str) -> Option<(&str, &str)> {
    let rest = &line[line.find("] ERROR[")? + "] ERROR[".len()..];
    let (thread, rest) = rest.split_once(']')?;
    let rest = match rest.strip_prefix("[C-") {
        Some(call) => call.split_once(']')?.1,
        None => rest,
    };
    Some((thread, rest.strip_prefix(' ')?))
}

/// Asserts that since `mark` exactly one injected panic in `entry_point` was
/// caught and logged as the guard promises: at ERROR, by the thread that
/// panicked, first the panic's message and source location (file:line of the
/// `panic!` in src/guard.rs), then the guard's line naming the entry point.
/// (Asterisk's log files give each line the source file of its `ast_log`,
/// without the line number.)
pub fn assert_panic_logged(asterisk: &Asterisk, mark: usize, entry_point: &str) {
    let outcome = format!("panic in {entry_point}: the call failed safely, Asterisk keeps running");
    let found = asterisk.wait_for_log_since(mark, &outcome, 5 * SECOND);
    let log = asterisk.log_since(mark);
    assert!(found, "{entry_point}: no {outcome:?} in the log:\n{log}");
    let line = source_line("src/guard.rs", "panic!(\"fault injection: {entry_point} asked to panic\")");
    let panicked = format!("src/guard.rs: panic at src/guard.rs:{line}: fault injection: {entry_point} asked to panic");
    let caught = format!("src/guard.rs: {outcome}");
    let errors: Vec<(&str, &str)> = log.lines().filter_map(error_line).collect();
    let panics: Vec<usize> = (0..errors.len()).filter(|&n| errors[n].1 == panicked).collect();
    assert_eq!(panics.len(), 1, "{entry_point}: want one ERROR line {panicked:?} since the mark:\n{log}");
    let thread = errors[panics[0]].0;
    let next = errors[panics[0] + 1..].iter().find(|(t, _)| *t == thread).map(|(_, text)| *text);
    assert_eq!(next, Some(caught.as_str()), "{entry_point}: the ERROR after the panic's, thread {thread}:\n{log}");
    assert_eq!(log.matches(&outcome).count(), 1, "{entry_point}: caught once:\n{log}");
}
