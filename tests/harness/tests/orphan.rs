//! No Asterisk outlives the test binary, even when an instance is leaked from a
//! finished thread and the binary then aborts or exits.

use asterisk_harness::{Asterisk, AsteriskConfig, Broadcaster, Runtime};
use std::process::Command;
use std::time::{Duration, Instant};

const MODE: &str = "HARNESS_ORPHAN_MODE";

/// Child side: leak an instance from a short-lived thread, prove it survived
/// that thread, then end the process the way the parent asked.
#[test]
fn orphan_child() {
    let Ok(mode) = std::env::var(MODE) else {
        return;
    };
    let pid = std::thread::spawn(|| {
        let a = Asterisk::start(AsteriskConfig::new(Broadcaster::Neither));
        let pid = a.pid();
        std::mem::forget(a);
        pid
    })
    .join()
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: existence probe only.
    assert_eq!(
        unsafe { libc::kill(pid, 0) },
        0,
        "instance died with the thread that started it"
    );
    println!("ASTERISK_PID={pid}");
    match mode.as_str() {
        "abort" => std::process::abort(),
        _ => std::process::exit(0),
    }
}

fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie waiting for init to reap it is dead.
        Ok(s) => s
            .rsplit(')')
            .next()
            .map(|r| r.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

fn run_child(mode: &str) {
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "orphan_child", "--nocapture", "--test-threads=1"])
        .env(MODE, mode)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run child test binary");
    let child_pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pid: i32 = stdout
        .lines()
        .find_map(|l| l.split("ASTERISK_PID=").nth(1))
        .unwrap_or_else(|| {
            panic!(
                "child printed no pid:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone(pid) {
        assert!(
            Instant::now() < deadline,
            "Asterisk {pid} outlived its test binary ({mode})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Its instance directory goes too: at exit by the atexit hook, after an
    // abort by the next harness user's stale sweep.
    let rt = Runtime::locate();
    rt.remove_stale_instances();
    let prefix = format!("sbtest-{child_pid}-");
    let left: Vec<String> = std::fs::read_dir(rt.root().join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "instance dirs left: {left:?}");
}

#[test]
fn abort_kills_leaked_instance() {
    if std::env::var(MODE).is_ok() {
        return;
    }
    run_child("abort");
}

#[test]
fn exit_kills_leaked_instance() {
    if std::env::var(MODE).is_ok() {
        return;
    }
    run_child("exit");
}
