//! A client program the tests run beside Asterisk (the ari-client race, the
//! example agents): it prints one JSON line per thing it did on stdout; the
//! tests wait on those lines, and read every one once it has exited.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What the program printed: stdout as JSON lines (a line that is not JSON
/// becomes `{"event":"unparsed"}`), stderr as text.
#[derive(Default)]
pub struct Transcript {
    pub lines: Vec<Value>,
    pub stderr: String,
    /// stdout closed: the program has exited (or is about to).
    pub closed: bool,
}

impl Transcript {
    pub fn render(&self) -> String {
        let mut s: String = self.lines.iter().map(|v| format!("{v}\n")).collect();
        if !self.stderr.trim().is_empty() {
            s.push_str(&format!("---- stderr ----\n{}\n", self.stderr.trim_end()));
        }
        s
    }
}

/// How a program is asked to stop.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM, as a service manager stops it.
    Terminate,
    /// Close its stdin (the race script exits on end of input).
    CloseStdin,
    /// Nothing: it is expected to exit by itself.
    Wait,
}

/// A running program. Dropping it (also while a test panics) closes its
/// stdin, sends SIGTERM and kills it if it has not exited within 2 s, then
/// prints its output if the test is failing; the kernel sends it SIGTERM if
/// the test binary dies first.
pub struct JsonLinesChild {
    label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    shared: Arc<(Mutex<Transcript>, Condvar)>,
    readers: Vec<std::thread::JoinHandle<()>>,
    /// An event name that means the program failed (waiting stops at once).
    fatal_event: Option<&'static str>,
}

fn lock(shared: &(Mutex<Transcript>, Condvar)) -> std::sync::MutexGuard<'_, Transcript> {
    shared.0.lock().unwrap_or_else(|e| e.into_inner())
}

impl JsonLinesChild {
    /// Starts `command` (stdin, stdout and stderr are piped here).
    pub fn spawn(label: &str, mut command: Command) -> JsonLinesChild {
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().unwrap_or_else(|e| panic!("start {label}: {e}"));
        let shared = Arc::new((Mutex::new(Transcript::default()), Condvar::new()));
        let (stdout, stderr) = (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
        let (out, err) = (shared.clone(), shared.clone());
        let readers = vec![
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let value = serde_json::from_str(&line).unwrap_or_else(|_| json!({ "event": "unparsed", "line": line }));
                    lock(&out).lines.push(value);
                    out.1.notify_all();
                }
                lock(&out).closed = true;
                out.1.notify_all();
            }),
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = BufReader::new(stderr).read_to_string(&mut text);
                lock(&err).stderr.push_str(&text);
                err.1.notify_all();
            }),
        ];
        JsonLinesChild { label: label.into(), stdin: child.stdin.take(), child, shared, readers, fatal_event: None }
    }

    /// Lines with this `event` end any wait at once, as a failure.
    pub fn fatal_event(mut self, event: &'static str) -> JsonLinesChild {
        self.fatal_event = Some(event);
        self
    }

    pub fn lines(&self) -> Vec<Value> {
        lock(&self.shared).lines.clone()
    }

    pub fn transcript(&self) -> String {
        lock(&self.shared).render()
    }

    pub fn has_exited(&self) -> bool {
        lock(&self.shared).closed
    }

    /// Waits until `done` holds for the lines so far; panics with the
    /// transcript after `timeout`, or at once if the program exited or
    /// printed its fatal event first.
    pub fn wait_until(&self, what: &str, timeout: Duration, done: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + timeout;
        let mut t = lock(&self.shared);
        while !done(&t.lines) {
            let label = &self.label;
            if let Some(event) = self.fatal_event {
                assert!(!t.lines.iter().any(|v| v["event"] == event), "{label}, {what}: it failed first\n{}", t.render());
            }
            assert!(!t.closed, "{label}, {what}: it exited first\n{}", t.render());
            let now = Instant::now();
            assert!(now < deadline, "{label}, {what}: not within {timeout:?}\n{}", t.render());
            t = self.shared.1.wait_timeout(t, (deadline - now).min(Duration::from_millis(100))).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    fn terminate(&self) {
        // SAFETY: signalling the child we started and have not reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
    }

    /// Asks the program to stop (`how`) and waits up to 10 s for its exit and
    /// the last of its output.
    pub fn finish(mut self, how: Stop) -> (ExitStatus, Transcript) {
        match how {
            Stop::Terminate => self.terminate(),
            Stop::CloseStdin => drop(self.stdin.take()),
            Stop::Wait => {}
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                break status;
            }
            assert!(Instant::now() < deadline, "{} still running 10 s later\n{}", self.label, self.transcript());
            std::thread::sleep(Duration::from_millis(20));
        };
        for reader in self.readers.drain(..) {
            reader.join().expect("output reader");
        }
        let transcript = std::mem::take(&mut *lock(&self.shared));
        (status, transcript)
    }
}

impl Drop for JsonLinesChild {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if self.child.try_wait().ok().flatten().is_none() {
            self.terminate();
            let deadline = Instant::now() + Duration::from_secs(2);
            while self.child.try_wait().ok().flatten().is_none() {
                if Instant::now() >= deadline {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if std::thread::panicking() {
            eprintln!("---- {} output ----\n{}", self.label, self.transcript());
        }
    }
}

/// The lines about one channel with that `event`.
pub fn about<'a>(lines: &'a [Value], event: &str, channel: &str) -> Vec<&'a Value> {
    lines.iter().filter(|v| v["event"] == event && v["channel"] == channel).collect()
}
