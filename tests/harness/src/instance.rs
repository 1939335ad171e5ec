//! One running Asterisk instance in the root, with its own directories, HTTP
//! port and control socket.

use crate::app::AriApp;
use crate::config::{AsteriskConfig, Broadcaster, InstallTree, OURS_NAME, REFERENCE_MODULES};
use crate::http::{encode, AriHttp, Response};
use crate::runtime::{free_port, register_live, spawn_guarded, unregister_live, Runtime};
use serde_json::{json, Map, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Overall deadline for one boot attempt.
const BOOT_DEADLINE: Duration = Duration::from_secs(30);
/// How long `Drop` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The same two under valgrind, which runs Asterisk some 20-50 times slower
/// and checks for leaks after it exits.
const VALGRIND_BOOT_DEADLINE: Duration = Duration::from_secs(300);
const VALGRIND_STOP_GRACE: Duration = Duration::from_secs(300);
/// valgrind's report, in the instance's directory.
const VALGRIND_REPORT: &str = "valgrind.txt";
/// Lines of log printed when an instance is dropped during a panic.
const LOG_TAIL_LINES: usize = 80;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique token for ids and directory names: `<pid>_<n>`, `n` zero-padded so
/// no token is a prefix of another (Asterisk refuses a channel id that is a
/// prefix of an existing channel's id).
fn unique_token() -> String {
    format!(
        "{}_{:06}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A running, fully booted Asterisk; stopped and removed on drop.
pub struct Asterisk {
    runtime: Runtime,
    name: String,
    label: String,
    dir: PathBuf,
    dir_in_root: String,
    port: u16,
    pid: i32,
    child: Mutex<Option<Child>>,
    http: AriHttp,
    /// Links added into an installation tree (`AsteriskConfig::installed_in`), removed on drop.
    overlay: Vec<PathBuf>,
    /// Running under valgrind: longer deadlines.
    valgrind: bool,
}

/// What to originate: a Local channel whose `;2` half runs `exten@context`.
#[derive(Clone, Debug)]
pub struct OriginateSpec {
    /// Extension the `;2` half runs.
    pub exten: String,
    /// Context the `;2` half runs.
    pub context: String,
    /// Channel variables (ARI `variables`; Local copies them to the `;2` half).
    pub variables: Vec<(String, String)>,
    /// ARI `timeout` in seconds for the `;1` half to be answered (ARI default 30).
    pub timeout_secs: Option<u32>,
    /// ARI `callerId` (becomes the `;2` half's caller id).
    pub caller_id: Option<String>,
    /// Id for the `;2` half (generated if `None`); must not be a prefix of a live channel's id.
    pub other_channel_id: Option<String>,
    /// Id for the `;1` half (generated if `None`).
    pub channel_id: Option<String>,
    /// ARI `formats` (default `slin`: tones and media need no codec translator).
    pub formats: String,
    /// Context the `;1` half runs at `s,1` once answered (default `hold`).
    pub caller_context: String,
}

impl OriginateSpec {
    /// A call to `exten@context` with generated ids.
    pub fn new(exten: &str, context: &str) -> OriginateSpec {
        OriginateSpec {
            exten: exten.into(),
            context: context.into(),
            variables: Vec::new(),
            timeout_secs: None,
            caller_id: None,
            other_channel_id: None,
            channel_id: None,
            formats: "slin".into(),
            caller_context: "hold".into(),
        }
    }

    /// Runs the `;1` half in another context (at `s,1`) instead of `hold`, e.g. one that plays media towards the `;2` half.
    pub fn caller_context(mut self, context: &str) -> OriginateSpec {
        self.caller_context = context.into();
        self
    }

    /// Adds a channel variable.
    pub fn var(mut self, name: &str, value: &str) -> OriginateSpec {
        self.variables.push((name.into(), value.into()));
        self
    }

    /// Sets the ARI originate timeout (seconds).
    pub fn timeout(mut self, secs: u32) -> OriginateSpec {
        self.timeout_secs = Some(secs);
        self
    }

    /// Sets the caller id (`"name" <number>` or a number).
    pub fn caller_id(mut self, cid: &str) -> OriginateSpec {
        self.caller_id = Some(cid.into());
        self
    }

    /// Sets the id of the `;1` half.
    pub fn channel_id(mut self, id: &str) -> OriginateSpec {
        self.channel_id = Some(id.into());
        self
    }

    /// Sets the id of the `;2` half (the one that runs the dialplan).
    pub fn other_channel_id(mut self, id: &str) -> OriginateSpec {
        self.other_channel_id = Some(id.into());
        self
    }
}

/// Ids of an originated Local pair.
#[derive(Clone, Debug)]
pub struct Originated {
    /// Id of the `;2` half, which runs `exten@context` (the one broadcast).
    pub id: String,
    /// Id of the `;1` half, which runs `s@hold` once answered.
    pub local_one_id: String,
    /// The ARI answer (the `;1` channel's JSON).
    pub response: Response,
}

impl Asterisk {
    /// Boots an isolated instance and waits until it is fully booted and ARI answers; panics with the log on failure.
    pub fn start(config: AsteriskConfig) -> Asterisk {
        let runtime = Runtime::locate();
        let mut last_err = String::new();
        for _attempt in 0..4 {
            match Asterisk::try_start(&runtime, &config) {
                Ok(a) => return a,
                Err(Retry::Port(msg)) => last_err = msg,
                Err(Retry::Fatal(msg)) => panic!("{msg}"),
            }
        }
        panic!("Asterisk could not bind a free HTTP port: {last_err}");
    }

    fn try_start(runtime: &Runtime, config: &AsteriskConfig) -> Result<Asterisk, Retry> {
        let name = format!("sbtest-{}", unique_token().replace('_', "-"));
        let dir_in_root = format!("/tmp/{name}");
        let dir = runtime.host_path(&dir_in_root);
        let port = free_port();
        let overlay = prepare_dir(runtime, config, &dir, &dir_in_root, port);

        let conf = format!("{dir_in_root}/etc/asterisk.conf");
        let stdout = fs::File::create(dir.join("stdout.txt")).expect("create stdout file");
        let stderr = fs::File::create(dir.join("stderr.txt")).expect("create stderr file");
        let mut program = "chroot";
        let mut args: Vec<String> = vec![runtime.root().display().to_string()];
        if config.valgrind {
            // valgrind needs /proc, which the root does not mount: mount it in
            // a private mount namespace that ends with the process.
            program = "unshare";
            args = vec![
                "--mount".into(),
                "--propagation".into(),
                "private".into(),
                "sh".into(),
                "-c".into(),
                r#"mount -t proc proc "$0/proc" && exec chroot "$0" "$@""#.into(),
                runtime.root().display().to_string(),
            ];
            args.push("valgrind".into());
            if config.callgrind {
                args.extend([
                    "--tool=callgrind".into(),
                    "--instr-atstart=no".into(),
                    // Every ARI WebSocket holds Asterisk threads: 500 applications need more than valgrind's default 500.
                    "--max-threads=3000".into(),
                    format!("--callgrind-out-file={dir_in_root}/callgrind.out"),
                ]);
            } else {
                args.extend([
                    "--leak-check=full".into(),
                    "--show-leak-kinds=definite,indirect".into(),
                    // Frames of a module unloaded before exit keep their names.
                    "--keep-debuginfo=yes".into(),
                    "--num-callers=40".into(),
                ]);
            }
            args.push(format!("--log-file={dir_in_root}/{VALGRIND_REPORT}"));
        }
        args.extend(["asterisk".into(), "-C".into(), conf, "-f".into()]);
        let child = match spawn_guarded(program, &args, stdout, stderr) {
            Ok(c) => c,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                remove_overlay(&overlay);
                return Err(Retry::Fatal(format!(
                    "cannot run {program} {}: {e}",
                    runtime.root().display()
                )));
            }
        };
        let pid = child.id() as i32;
        register_live(pid, &dir);
        let label = config.label.clone().unwrap_or_else(|| name.clone());
        let http = AriHttp::new(&format!("http://127.0.0.1:{port}"));
        let valgrind = config.valgrind;
        let ast = Asterisk {
            runtime: runtime.clone(),
            name,
            label,
            dir,
            dir_in_root,
            port,
            pid,
            child: Mutex::new(Some(child)),
            http,
            overlay,
            valgrind,
        };

        let boot_deadline = if valgrind {
            VALGRIND_BOOT_DEADLINE
        } else {
            BOOT_DEADLINE
        };
        let deadline = Instant::now() + boot_deadline;
        // 1. Fully booted, per the control socket.
        loop {
            if let Some(status) = ast.exit_status() {
                return Err(Retry::Fatal(format!(
                    "{}: Asterisk exited during boot ({status})\n{}",
                    ast.label,
                    ast.diagnostics()
                )));
            }
            let out = ast.cli_status("core waitfullybooted");
            if out.0 && out.1.contains("fully booted") {
                break;
            }
            if Instant::now() > deadline {
                return Err(Retry::Fatal(format!(
                    "{}: Asterisk did not fully boot within {boot_deadline:?}\n{}",
                    ast.label,
                    ast.diagnostics()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // 2. Our HTTP server really owns the port (not somebody else's).
        let bound = format!("Bound HTTP server 'http server' to address 127.0.0.1:{port}");
        if !ast.log().contains(&bound) {
            let msg = format!("{}: HTTP server did not bind 127.0.0.1:{port}", ast.label);
            return Err(Retry::Port(msg)); // drop stops and removes it
        }
        // 3. Requested modules are running.
        if config.strict_modules {
            let shown = ast.cli("module show");
            let missing: Vec<String> = config
                .load_list(runtime)
                .into_iter()
                .filter(|m| {
                    !shown
                        .lines()
                        .any(|l| l.starts_with(m.as_str()) && l.contains(" Running "))
                })
                .collect();
            if !missing.is_empty() {
                return Err(Retry::Fatal(format!(
                    "{}: modules not running: {missing:?}\n{}",
                    ast.label,
                    ast.diagnostics()
                )));
            }
        }
        // 4. ARI answers.
        loop {
            let r = ast.http.get("/asterisk/info");
            if r.status == 200 {
                break;
            }
            if Instant::now() > deadline {
                return Err(Retry::Fatal(format!(
                    "{}: ARI never answered 200 (last: {} {})\n{}",
                    ast.label,
                    r.status,
                    r.body,
                    ast.diagnostics()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(ast)
    }

    /// Instance name (`sbtest-<pid>-<n>`), also its directory name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The runtime (root) this instance runs in.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Host path of the instance directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Host path of the `rest-api/` directory this instance's ARI serves
    /// api-docs from: its own copy with `AsteriskConfig::own_rest_api`, else
    /// the root's.
    pub fn rest_api_dir(&self) -> PathBuf {
        let own = self.dir.join("data/rest-api");
        if own.is_dir() {
            own
        } else {
            self.runtime
                .host_path(self.runtime.datadir_in_root())
                .join("rest-api")
        }
    }

    /// The instance directory as seen inside the root (`/tmp/sbtest-…`).
    pub fn dir_in_root(&self) -> &str {
        &self.dir_in_root
    }

    /// PID of the Asterisk process (chroot execs it, so this is Asterisk itself).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// HTTP (ARI) port on 127.0.0.1.
    pub fn http_port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// ARI HTTP client (credentials `test`/`test`; shares one connection pool).
    pub fn ari(&self) -> AriHttp {
        self.http.clone()
    }

    /// Runs a CLI command via `asterisk -rx` and returns its output.
    pub fn cli(&self, cmd: &str) -> String {
        self.cli_status(cmd).1
    }

    fn cli_status(&self, cmd: &str) -> (bool, String) {
        let out = Command::new("chroot")
            .arg(self.runtime.root())
            .args([
                "asterisk",
                "-C",
                &format!("{}/etc/asterisk.conf", self.dir_in_root),
                "-rx",
                cmd,
            ])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) => {
                let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
                s.push_str(&String::from_utf8_lossy(&o.stderr));
                (o.status.success(), s)
            }
            Err(e) => (false, format!("cannot run chroot: {e}")),
        }
    }

    /// Host path of the full log (`log/full`).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("log/full")
    }

    /// Full log content so far.
    pub fn log(&self) -> String {
        fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Current log length in bytes, to pass to `log_since`.
    pub fn log_mark(&self) -> usize {
        fs::metadata(self.log_path())
            .map(|m| m.len() as usize)
            .unwrap_or(0)
    }

    /// Log written after `mark` (from `log_mark`).
    pub fn log_since(&self, mark: usize) -> String {
        let b = fs::read(self.log_path()).unwrap_or_default();
        String::from_utf8_lossy(b.get(mark..).unwrap_or(&[])).into_owned()
    }

    /// Waits until the full log contains `needle`; false on timeout.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_for_log_since(0, needle, timeout)
    }

    /// Waits until the log written after `mark` contains `needle`; false on timeout.
    pub fn wait_for_log_since(&self, mark: usize, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log_since(mark).contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident set size of the Asterisk process in KiB (host `/proc/<pid>/status` VmRSS).
    pub fn rss_kib(&self) -> Option<u64> {
        let s = fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Whether the Asterisk process is still running.
    pub fn is_running(&self) -> bool {
        self.exit_status().is_none()
    }

    /// Exit status if the process has ended (reaped), else `None`.
    pub fn exit_status(&self) -> Option<std::process::ExitStatus> {
        let mut g = self.child.lock().unwrap_or_else(|e| e.into_inner());
        g.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Originates a Local channel to `exten@context` (other half parked in `[hold]`); returns the id of the half running `exten@context`; panics unless ARI answers 200.
    pub fn originate(&self, spec: OriginateSpec) -> String {
        match self.try_originate(spec) {
            Ok(o) => o.id,
            Err(r) => panic!("{}: originate failed: {} {}", self.label, r.status, r.body),
        }
    }

    /// Like `originate` but returns both ids and the ARI answer, or the non-200 answer as `Err`.
    pub fn try_originate(&self, spec: OriginateSpec) -> Result<Originated, Response> {
        let token = unique_token();
        let id = spec
            .other_channel_id
            .clone()
            .unwrap_or_else(|| format!("sbt{token}_2"));
        let one = spec
            .channel_id
            .clone()
            .unwrap_or_else(|| format!("sbt{token}_1"));
        let mut q = format!(
            "/channels?endpoint={}&context={}&extension=s&priority=1&channelId={}&otherChannelId={}",
            encode(&format!("Local/{}@{}", spec.exten, spec.context)),
            encode(&spec.caller_context),
            encode(&one),
            encode(&id)
        );
        if !spec.formats.is_empty() {
            q.push_str(&format!("&formats={}", encode(&spec.formats)));
        }
        if let Some(t) = spec.timeout_secs {
            q.push_str(&format!("&timeout={t}"));
        }
        if let Some(c) = &spec.caller_id {
            q.push_str(&format!("&callerId={}", encode(c)));
        }
        let body = if spec.variables.is_empty() {
            None
        } else {
            let vars: Map<String, Value> = spec
                .variables
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            Some(json!({ "variables": vars }))
        };
        let r = self.http.post(&q, body.as_ref());
        if r.status == 200 {
            Ok(Originated {
                id,
                local_one_id: one,
                response: r,
            })
        } else {
            Err(r)
        }
    }

    /// `POST /ari/channels/{id}/continue`.
    pub fn continue_channel(&self, channel_id: &str) -> Response {
        self.http.continue_channel(channel_id)
    }

    /// `DELETE /ari/channels/{id}`.
    pub fn hangup(&self, channel_id: &str) -> Response {
        self.http.hangup(channel_id)
    }

    /// `POST /ari/events/claim` with the default credentials.
    pub fn claim(&self, channel_id: &str, app: &str) -> Response {
        self.http.claim(channel_id, app)
    }

    /// Global dialplan variable (`None` if unset or empty).
    pub fn global_var(&self, name: &str) -> Option<String> {
        self.http.global_var(name)
    }

    /// Polls a global variable until it is set (non-empty) or the timeout passes.
    pub fn wait_for_global(&self, name: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.global_var(name) {
                return Some(v);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Connects an ARI WebSocket application `name`; returns once Asterisk lists it as registered.
    pub fn connect_app(&self, name: &str) -> AriApp {
        AriApp::connect(self.port, name, "api_key=test:test", self.http.clone())
    }

    /// Like `connect_app`, but a refused upgrade (no `/ari/events` route, bad
    /// credentials) comes back as `Err` with Asterisk's answer.
    pub fn try_connect_app(&self, name: &str, query: &str) -> Result<AriApp, String> {
        AriApp::try_connect(self.port, name, query, self.http.clone())
    }

    /// Connects an ARI WebSocket application `name` authenticated by
    /// `Authorization: Basic` on the upgrade request (no `api_key`); `query`
    /// is any further query tail (may be empty).
    pub fn connect_app_basic(&self, name: &str, user: &str, password: &str, query: &str) -> AriApp {
        let authorization = crate::http::basic_authorization(user, password);
        AriApp::try_connect_with_headers(self.port, name, query, &[("Authorization", &authorization)], self.http.clone())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like `connect_app` with a custom query tail instead of `api_key=test:test` (e.g. `api_key=u:p&subscribeAll=true`).
    pub fn connect_app_with(&self, name: &str, query: &str) -> AriApp {
        AriApp::connect(self.port, name, query, self.http.clone())
    }

    /// Sends a monitor command to the callgrind this instance runs under
    /// ([`crate::AsteriskConfig::under_callgrind`]) through `vgdb` in the
    /// root: `instrumentation on`, `zero`, `dump`, … Returns vgdb's output,
    /// or why it failed.
    pub fn callgrind(&self, command: &str) -> Result<String, String> {
        let pid = self.pid.to_string();
        let mut args = vec![self.runtime.root().display().to_string(), "vgdb".into(), format!("--pid={pid}")];
        args.extend(command.split_whitespace().map(str::to_owned));
        let out = Command::new("chroot")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("vgdb: {e}"))?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("vgdb {command}: {}: {text}", out.status))
        }
    }

    /// Stops the instance now (SIGTERM, SIGKILL after 5 s), removes it, and tells how it ended.
    pub fn stop(mut self) -> Exit {
        self.shutdown().expect("instance already stopped")
    }

    /// Stops the instance like [`Asterisk::stop`] and returns how it ended
    /// with valgrind's report (instances started
    /// [`crate::AsteriskConfig::under_valgrind`]; empty otherwise).
    pub fn stop_with_valgrind_report(mut self) -> (Exit, String) {
        let exit = self.shutdown().expect("instance already stopped");
        let report = fs::read_to_string(self.dir.join(VALGRIND_REPORT)).unwrap_or_default();
        (exit, report)
    }

    /// Last lines of the log plus stderr, for failure messages.
    pub fn diagnostics(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        let stderr = fs::read_to_string(self.dir.join("stderr.txt")).unwrap_or_default();
        let stdout = fs::read_to_string(self.dir.join("stdout.txt")).unwrap_or_default();
        let mut s = format!(
            "--- {} log/full (last {LOG_TAIL_LINES} lines) ---\n{tail}\n",
            self.label
        );
        if !stderr.trim().is_empty() {
            s.push_str(&format!(
                "--- {} stderr ---\n{}\n",
                self.label,
                stderr.trim_end()
            ));
        }
        let stdout_tail: Vec<&str> = stdout.lines().rev().take(20).collect();
        if !stdout.trim().is_empty() && tail.trim().is_empty() {
            s.push_str(&format!(
                "--- {} stdout ---\n{}\n",
                self.label,
                stdout_tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        s
    }

    fn shutdown(&mut self) -> Option<Exit> {
        let mut child = self
            .child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        let exit = match child.try_wait().ok().flatten() {
            Some(status) => Exit {
                status,
                forced: false,
                before_stop: true,
            },
            None => {
                // SAFETY: signalling the process we started and have not reaped.
                unsafe { libc::kill(self.pid, libc::SIGTERM) };
                let deadline = Instant::now()
                    + if self.valgrind {
                        VALGRIND_STOP_GRACE
                    } else {
                        STOP_GRACE
                    };
                loop {
                    if let Some(status) = child.try_wait().ok().flatten() {
                        break Exit {
                            status,
                            forced: false,
                            before_stop: false,
                        };
                    }
                    if Instant::now() >= deadline {
                        let _ = child.kill();
                        let status = child.wait().expect("reap Asterisk");
                        break Exit {
                            status,
                            forced: true,
                            before_stop: false,
                        };
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        };
        unregister_live(self.pid);
        Some(exit)
    }
}

/// How a stopped instance ended.
#[derive(Clone, Copy, Debug)]
pub struct Exit {
    /// The process's exit status.
    pub status: std::process::ExitStatus,
    /// It ignored SIGTERM for the whole grace period and was SIGKILLed.
    pub forced: bool,
    /// It had already exited (crashed or was stopped) before the stop request.
    pub before_stop: bool,
}

impl Exit {
    /// Ended by our SIGTERM with exit code 0 within the grace period.
    pub fn is_clean(&self) -> bool {
        !self.forced && !self.before_stop && self.status.success()
    }
}

impl Drop for Asterisk {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let mut out = String::new();
            for l in &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..] {
                out.push_str(&format!("[{}] {}\n", self.label, l));
            }
            eprint!(
                "[{}] ---- last {} log lines ----\n{out}",
                self.label, LOG_TAIL_LINES
            );
        }
        if let Some(exit) = self.shutdown() {
            if !exit.is_clean() {
                eprintln!("[{}] Asterisk did not stop cleanly: {exit:?}", self.label);
            }
        }
        if std::env::var_os("STASIS_BROADCAST_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("[{}] kept {}", self.label, self.dir.display());
        }
        remove_overlay(&self.overlay);
    }
}

enum Retry {
    Port(String),
    Fatal(String),
}

/// Where the instance's modules and data come from: its own `modules` dir
/// and the root's data dir, or an installation tree.
struct Layout {
    /// Host path of the module directory.
    moddir: PathBuf,
    /// `astmoddir`, as seen inside the root.
    moddir_in_root: String,
    /// `astdatadir`, as seen inside the root.
    datadir_in_root: String,
    /// Whether links go into an installation tree (and are recorded for removal).
    in_tree: bool,
}

impl Layout {
    fn new(runtime: &Runtime, dir: &Path, inside: &str, tree: Option<&InstallTree>) -> Layout {
        let Some(tree) = tree else {
            return Layout {
                moddir: dir.join("modules"),
                moddir_in_root: format!("{inside}/modules"),
                datadir_in_root: runtime.datadir_in_root().into(),
                in_tree: false,
            };
        };
        let destdir_in_root = runtime.path_in_root(&tree.destdir).unwrap_or_else(|| {
            panic!(
                "installed_in: {} is not inside the root {}",
                tree.destdir.display(),
                runtime.root().display()
            )
        });
        let destdir_in_root = destdir_in_root.trim_end_matches('/');
        Layout {
            moddir: tree.destdir.join(tree.moddir.trim_start_matches('/')),
            moddir_in_root: format!("{destdir_in_root}{}", tree.moddir),
            datadir_in_root: format!("{destdir_in_root}{}", tree.datadir),
            in_tree: true,
        }
    }
}

/// Links every entry of `from_in_root` (a directory inside the root) that
/// `to` (a host directory) lacks, descending into directories both have;
/// returns the links made.
fn overlay_dir(runtime: &Runtime, from_in_root: &str, to: &Path) -> Vec<PathBuf> {
    let from = runtime.host_path(from_in_root);
    let entries = fs::read_dir(&from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    let mut made = Vec::new();
    for e in entries.flatten() {
        let fname = e.file_name().to_string_lossy().into_owned();
        let target = to.join(&fname);
        let source_in_root = format!("{from_in_root}/{fname}");
        match fs::symlink_metadata(&target) {
            Err(_) => {
                std::os::unix::fs::symlink(&source_in_root, &target).unwrap_or_else(|e| {
                    panic!("link {source_in_root} at {}: {e}", target.display())
                });
                made.push(target);
            }
            Ok(meta) if meta.is_dir() && e.path().is_dir() => {
                made.extend(overlay_dir(runtime, &source_in_root, &target))
            }
            Ok(_) => {}
        }
    }
    made
}

/// Removes links and files the harness added into an installation tree.
fn remove_overlay(paths: &[PathBuf]) {
    for path in paths.iter().rev() {
        let _ = fs::remove_file(path);
    }
}

/// Writes the instance directory: config files and module links. Returns
/// what it added into an installation tree, if the instance runs from one.
fn prepare_dir(
    runtime: &Runtime,
    config: &AsteriskConfig,
    dir: &Path,
    inside: &str,
    port: u16,
) -> Vec<PathBuf> {
    let _ = fs::remove_dir_all(dir);
    for sub in [
        "etc", "run", "log", "lib", "spool", "db", "modules", "cache", "keys",
    ] {
        fs::create_dir_all(dir.join(sub))
            .unwrap_or_else(|e| panic!("create {}/{sub}: {e}", dir.display()));
    }
    let mut layout = Layout::new(runtime, dir, inside, config.install_tree.as_ref());
    if config.own_rest_api {
        assert!(
            !layout.in_tree,
            "own_rest_api and installed_in each choose the data directory"
        );
        let rest_api = dir.join("data/rest-api");
        fs::create_dir_all(&rest_api)
            .unwrap_or_else(|e| panic!("create {}: {e}", rest_api.display()));
        let from = runtime
            .host_path(runtime.datadir_in_root())
            .join("rest-api");
        let entries =
            fs::read_dir(&from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
        for e in entries.flatten() {
            if e.path().is_file() {
                fs::copy(e.path(), rest_api.join(e.file_name()))
                    .unwrap_or_else(|err| panic!("copy {}: {err}", e.path().display()));
            }
        }
        // Links inside the instance directory: removed with it.
        overlay_dir(runtime, runtime.datadir_in_root(), &dir.join("data"));
        layout.datadir_in_root = format!("{inside}/data");
    }
    let mut overlay = Vec::new();
    if layout.in_tree {
        assert!(
            !matches!(config.broadcaster, Broadcaster::Ours(_)),
            "installed_in: the module comes from the tree; use Broadcaster::Neither and load()"
        );
        fs::create_dir_all(&layout.moddir)
            .unwrap_or_else(|e| panic!("create {}: {e}", layout.moddir.display()));
        let datadir = runtime.host_path(&layout.datadir_in_root);
        fs::create_dir_all(&datadir)
            .unwrap_or_else(|e| panic!("create {}: {e}", datadir.display()));
        overlay.extend(overlay_dir(runtime, runtime.datadir_in_root(), &datadir));
    }
    // Module dir: links to the system modules, minus the broadcasters not chosen
    // (and, in a tree, minus the modules installed there).
    let sysdir = runtime.modules_dir();
    let sys_in_root = runtime.modules_dir_in_root();
    let link_reference =
        config.link_reference || matches!(config.broadcaster, Broadcaster::Reference);
    let entries =
        fs::read_dir(&sysdir).unwrap_or_else(|e| panic!("read {}: {e}", sysdir.display()));
    for e in entries.flatten() {
        let fname = e.file_name().to_string_lossy().into_owned();
        if REFERENCE_MODULES.contains(&fname.as_str()) && !link_reference {
            continue;
        }
        if fname == OURS_NAME {
            continue;
        }
        let target = layout.moddir.join(&fname);
        if layout.in_tree && fs::symlink_metadata(&target).is_ok() {
            continue;
        }
        std::os::unix::fs::symlink(format!("{sys_in_root}/{fname}"), &target)
            .unwrap_or_else(|e| panic!("link module {fname}: {e}"));
        if layout.in_tree {
            overlay.push(target);
        }
    }
    if let Broadcaster::Ours(path) = &config.broadcaster {
        fs::copy(path, layout.moddir.join(OURS_NAME))
            .unwrap_or_else(|e| panic!("copy our module {} (build it first): {e}", path.display()));
    }
    for (name, path) in &config.module_files {
        let target = layout.moddir.join(name);
        let _ = fs::remove_file(&target);
        fs::copy(path, &target)
            .unwrap_or_else(|e| panic!("copy module file {}: {e}", path.display()));
        if layout.in_tree {
            overlay.push(target);
        }
    }

    let mut files: Vec<(String, String)> = Vec::new();
    files.push((
        "asterisk.conf".into(),
        format!(
            "[directories]\n\
             astetcdir => {inside}/etc\n\
             astmoddir => {}\n\
             astvarlibdir => {inside}/lib\n\
             astdbdir => {inside}/db\n\
             astkeydir => {inside}/keys\n\
             astdatadir => {}\n\
             astagidir => /usr/share/asterisk/agi-bin\n\
             astspooldir => {inside}/spool\n\
             astrundir => {inside}/run\n\
             astlogdir => {inside}/log\n\
             astcachedir => {inside}/cache\n\
             astsbindir => /usr/sbin\n\
             \n[options]\n\
             verbose = 3\n\
             debug = 0\n\
             nocolor = yes\n\
             transmit_silence = no\n\
             hideconnect = yes\n\
             {}",
            layout.moddir_in_root, layout.datadir_in_root, config.options
        ),
    ));
    let mut module_lines = String::new();
    for m in config.load_list(runtime) {
        module_lines.push_str(&format!("load => {m}\n"));
    }
    for m in config.noload_list(runtime) {
        module_lines.push_str(&format!("noload => {m}\n"));
    }
    let stock = config.stock_etc.as_deref().map(|from| copy_stock_configuration(from, &dir.join("etc")));
    match &stock {
        // The stock [modules] section (autoload=yes and its noloads) plus ours.
        Some(stock_modules) => files.push((
            "modules.conf".into(),
            stock_modules.replacen("[modules]\n", &format!("[modules]\n{module_lines}"), 1),
        )),
        None => files.push(("modules.conf".into(), format!("[modules]\nautoload = no\n{module_lines}"))),
    }
    files.push((
        "http.conf".into(),
        format!(
            "[general]\nenabled = yes\nbindaddr = 127.0.0.1\nbindport = {port}\n{}",
            config.http_general
        ),
    ));
    let mut ari = String::from("[general]\nenabled = yes\npretty = no\nallowed_origins = *\n");
    if let Some(v) = &config.channelvars {
        ari.push_str(&format!("channelvars = {v}\n"));
    }
    ari.push_str(&config.ari_general);
    ari.push('\n');
    for u in &config.ari_users {
        ari.push_str(&u.render());
    }
    ari.push_str(&config.ari_sections);
    files.push(("ari.conf".into(), ari));
    files.push((
        "logger.conf".into(),
        "[general]\ndateformat = %F %T.%3q\n\n[logfiles]\n\
         full => notice,warning,error,debug,verbose(3),dtmf\n\
         messages.log => notice,warning,error\n"
            .into(),
    ));
    files.push((
        "extensions.conf".into(),
        format!("[general]\nstatic = yes\nwriteprotect = yes\n\n[hold]\nexten => s,1,Answer()\n same => n,Wait(120)\n\n{}", config.dialplan),
    ));
    // Present but empty or minimal, so boot logs carry no "cannot load" noise.
    files.push(("cdr.conf".into(), "[general]\nenable = no\n".into()));
    files.push(("indications.conf".into(), INDICATIONS.into()));
    for f in [
        "cel.conf",
        "features.conf",
        "acl.conf",
        "udptl.conf",
        "ccss.conf",
        "manager.conf",
        "stasis.conf",
    ] {
        files.push((f.into(), String::new()));
    }
    files.push(("websocket_client.conf".into(), config.websocket_clients.clone()));
    if stock.is_some() {
        // Keep the stock files the harness would otherwise blank.
        files.retain(|(n, _)| OWNED_IN_STOCK.contains(&n.as_str()));
    }
    for (name, content) in &config.files {
        files.retain(|(n, _)| n != name);
        files.push((name.clone(), content.clone()));
    }
    for (name, content) in files {
        let p = dir.join("etc").join(&name);
        fs::write(&p, content).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    }
    overlay
}

/// The files the harness writes over a stock configuration: what it must
/// own to run and observe the instance.
const OWNED_IN_STOCK: &[&str] =
    &["asterisk.conf", "modules.conf", "http.conf", "ari.conf", "logger.conf", "extensions.conf"];

/// Copies a stock configuration directory into `etc` (dropping `.sample`
/// suffixes) and returns its `modules.conf`, with line endings normalised.
fn copy_stock_configuration(from: &Path, etc: &Path) -> String {
    let entries = fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    for e in entries.flatten() {
        let path = e.path();
        if !path.is_file() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let name = name.strip_suffix(".sample").unwrap_or(&name).to_owned();
        fs::copy(&path, etc.join(&name)).unwrap_or_else(|err| panic!("copy {}: {err}", path.display()));
    }
    let modules = etc.join("modules.conf");
    let text = fs::read_to_string(&modules)
        .unwrap_or_else(|e| panic!("the stock configuration {} has no modules.conf: {e}", from.display()));
    assert!(text.contains("[modules]"), "{} has no [modules] section", modules.display());
    text.replace("\r\n", "\n")
}

/// Minimal tone set so `Playtones(ring)` and friends work.
const INDICATIONS: &str = "[general]\ncountry = us\n\n[us]\ndescription = United States\nringcadence = 2000,4000\n\
dial = 350+440\nbusy = 480+620/500,0/500\nring = 440+480/2000,0/4000\ncongestion = 480+620/250,0/250\n\
callwaiting = 440/300,0/10000\nrecord = 1400/500,0/15000\ninfo = !950/330,!1400/330,!1800/330,0\n";
