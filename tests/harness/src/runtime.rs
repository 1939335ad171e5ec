//! Locating the sid root, spawning Asterisk so it cannot outlive the test
//! binary, and the process-wide registry of live instances.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, Once, OnceLock};

/// Module and data directories of the two layouts a root can have: Debian's
/// package (`scripts/runtime.sh`) and Asterisk's own `make install`
/// (`scripts/asterisk-source.sh`), tried in this order when asterisk.conf
/// does not say.
const LAYOUTS: &[(&str, &str)] = &[
    (
        "/usr/lib/x86_64-linux-gnu/asterisk/modules",
        "/usr/share/asterisk",
    ),
    ("/usr/lib/asterisk/modules", "/var/lib/asterisk"),
];

/// A root that carries a real Asterisk: Debian sid's package (the default) or
/// a release built from source for the version matrix.
#[derive(Clone, Debug)]
pub struct Runtime {
    root: PathBuf,
    moddir_in_root: String,
    datadir_in_root: String,
    version: (u32, u32, u32),
}

impl Runtime {
    /// Finds the root (env `STASIS_BROADCAST_ROOT`, else `${XDG_CACHE_HOME:-$HOME/.cache}/res_stasis_broadcast_rs/sid-root`); panics if Asterisk is missing there.
    pub fn locate() -> Runtime {
        let root = match std::env::var_os("STASIS_BROADCAST_ROOT") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => {
                let cache = match std::env::var_os("XDG_CACHE_HOME") {
                    Some(p) if !p.is_empty() => PathBuf::from(p),
                    _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                        .join(".cache"),
                };
                cache.join("res_stasis_broadcast_rs").join("sid-root")
            }
        };
        if !root.join("usr/sbin/asterisk").exists() {
            panic!(
                "Asterisk runtime missing at {}: run `make runtime`",
                root.display()
            );
        }
        let (moddir_in_root, datadir_in_root) = layout_of(&root);
        let version = parse_version(&asterisk_v(&root))
            .unwrap_or_else(|| panic!("cannot read the Asterisk version of {}", root.display()));
        let rt = Runtime {
            root,
            moddir_in_root,
            datadir_in_root,
            version,
        };
        static STALE: Once = Once::new();
        STALE.call_once(|| rt.remove_stale_instances());
        rt
    }

    /// Host path of the root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Host path of the system module directory inside the root.
    pub fn modules_dir(&self) -> PathBuf {
        self.host_path(&self.moddir_in_root)
    }

    /// The system module directory as seen inside the root.
    pub fn modules_dir_in_root(&self) -> &str {
        &self.moddir_in_root
    }

    /// Asterisk's data directory (`astdatadir`: rest-api, documentation) as seen inside the root.
    pub fn datadir_in_root(&self) -> &str {
        &self.datadir_in_root
    }

    /// The Asterisk version, as (major, minor, patch).
    pub fn version(&self) -> (u32, u32, u32) {
        self.version
    }

    /// Whether this Asterisk is at least the first release of its branch
    /// listed in `firsts` (e.g. `&[(20, 20), (22, 10), (23, 4)]`): a branch
    /// not listed is covered when it is newer than every branch listed.
    pub fn at_least(&self, firsts: &[(u32, u32)]) -> bool {
        let (major, minor, _) = self.version;
        match firsts.iter().find(|(m, _)| *m == major) {
            Some((_, first)) => minor >= *first,
            None => firsts.iter().all(|(m, _)| major > *m),
        }
    }

    /// Whether the system module directory has `name` (e.g. `res_stasis_broadcast.so`).
    pub fn has_module(&self, name: &str) -> bool {
        self.modules_dir().join(name).exists()
    }

    /// Whether the C reference modules are installed (Debian's 22.10.1; absent from older releases).
    pub fn has_reference(&self) -> bool {
        crate::config::REFERENCE_MODULES
            .iter()
            .all(|m| self.has_module(m))
    }

    /// Host path for a path inside the root.
    pub fn host_path(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }

    /// The path inside the root of a host path under it (`None` if it is outside the root).
    pub fn path_in_root(&self, host: &Path) -> Option<String> {
        let rel = host.strip_prefix(&self.root).ok()?;
        Some(format!("/{}", rel.display()))
    }

    /// Output of `asterisk -V` run in the root.
    pub fn asterisk_version(&self) -> String {
        asterisk_v(&self.root)
    }

    /// Removes instance directories left by test binaries that no longer run (done once per process by `locate`).
    pub fn remove_stale_instances(&self) {
        let Ok(rd) = std::fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("sbtest-") else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            // SAFETY: kill with signal 0 only checks whether the process exists.
            let alive = pid == std::process::id() as i32 || unsafe { libc::kill(pid, 0) } == 0;
            if !alive {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

fn asterisk_v(root: &Path) -> String {
    let out = Command::new("chroot")
        .arg(root)
        .args(["asterisk", "-V"])
        .stdin(Stdio::null())
        .output()
        .expect("run chroot asterisk -V");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// "Asterisk 22.10.1+dfsg+~cs6…" or "Asterisk 20.6.0" → (major, minor, patch).
fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let v = text.strip_prefix("Asterisk ")?;
    let mut parts = v
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>());
    Some((
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next()?.ok()?,
    ))
}

/// The root's module and data directories: from its asterisk.conf when it
/// has one, else the first layout whose module directory exists.
fn layout_of(root: &Path) -> (String, String) {
    let conf = std::fs::read_to_string(root.join("etc/asterisk/asterisk.conf")).unwrap_or_default();
    let setting = |key: &str| {
        conf.lines().find_map(|l| {
            let l = l.split(';').next()?.trim();
            let (k, v) = l.split_once("=>")?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let (moddir, datadir) = LAYOUTS
        .iter()
        .find(|(m, _)| root.join(m.trim_start_matches('/')).is_dir())
        .copied()
        .unwrap_or(LAYOUTS[0]);
    (
        setting("astmoddir").unwrap_or_else(|| moddir.into()),
        setting("astdatadir").unwrap_or_else(|| datadir.into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_asterisk_v() {
        assert_eq!(
            parse_version("Asterisk 22.10.1+dfsg+~cs6.17.60671434-1"),
            Some((22, 10, 1))
        );
        assert_eq!(parse_version("Asterisk 20.6.0"), Some((20, 6, 0)));
        assert_eq!(parse_version("Asterisk GIT-master-abc"), None);
    }

    #[test]
    fn at_least_reads_per_branch_firsts() {
        let rt = |v| Runtime {
            root: PathBuf::new(),
            moddir_in_root: String::new(),
            datadir_in_root: String::new(),
            version: v,
        };
        let route = [(20, 20), (22, 10), (23, 4)];
        assert!(!rt((20, 6, 0)).at_least(&route));
        assert!(rt((20, 20, 0)).at_least(&route));
        assert!(
            !rt((21, 12, 0)).at_least(&route),
            "21 is older than 22 and has no entry"
        );
        assert!(!rt((22, 9, 0)).at_least(&route));
        assert!(rt((22, 10, 1)).at_least(&route));
        assert!(!rt((23, 3, 0)).at_least(&route));
        assert!(rt((24, 0, 0)).at_least(&route));
    }
}

/// What the spawner thread needs to start one process.
struct SpawnRequest {
    program: String,
    args: Vec<String>,
    stdout: File,
    stderr: File,
    reply: mpsc::Sender<io::Result<Child>>,
}

/// Starts a process whose parent is a thread that lives as long as the test
/// binary, with `PR_SET_PDEATHSIG = SIGKILL`: the kernel kills it when the
/// test binary exits or dies, however that happens. (The death signal fires
/// when the *thread* that forked exits, so forking from short-lived test
/// threads would kill instances shared between tests.)
pub(crate) fn spawn_guarded(
    program: &str,
    args: &[String],
    stdout: File,
    stderr: File,
) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let tx = SPAWNER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<SpawnRequest>();
            std::thread::Builder::new()
                .name("asterisk-spawner".into())
                .spawn(move || {
                    for req in rx {
                        let _ = req.reply.send(spawn_now(
                            &req.program,
                            &req.args,
                            req.stdout,
                            req.stderr,
                        ));
                    }
                })
                .expect("start spawner thread");
            Mutex::new(tx)
        })
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let (reply, answer) = mpsc::channel();
    tx.send(SpawnRequest {
        program: program.into(),
        args: args.to_vec(),
        stdout,
        stderr,
        reply,
    })
    .map_err(|_| io::Error::other("spawner thread gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("spawner thread gone"))?
}

fn spawn_now(program: &str, args: &[String], stdout: File, stderr: File) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Live instances: (pid, host instance dir). Read by the atexit hook.
static LIVE: Mutex<Vec<(i32, PathBuf)>> = Mutex::new(Vec::new());

extern "C" fn kill_leftovers() {
    let list = match LIVE.try_lock() {
        Ok(g) => g.clone(),
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().clone(),
        Err(std::sync::TryLockError::WouldBlock) => return,
    };
    for (pid, dir) in list {
        // SAFETY: plain syscalls on a pid this process started.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Records a live instance (and installs the atexit hook once).
pub(crate) fn register_live(pid: i32, dir: &Path) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: registering a plain extern "C" fn.
        unsafe { libc::atexit(kill_leftovers) };
    });
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((pid, dir.to_path_buf()));
}

/// Forgets a stopped instance.
pub(crate) fn unregister_live(pid: i32) {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(p, _)| *p != pid);
}

/// A free TCP port on 127.0.0.1, never handed out twice by this process.
pub(crate) fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let set = given.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local_addr").port();
        if set.insert(port) {
            return port;
        }
    }
    panic!("no free TCP port on 127.0.0.1");
}
