//! `make install` and `make uninstall` against a real Asterisk 22.10.1: the
//! module, its XML documentation and the sample configuration land where
//! Asterisk looks for them, an Asterisk started from that tree runs the
//! module and shows its documentation, and uninstall removes exactly what
//! install put there.

mod common;

use common::docs::*;
use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

const OURS: &str = "res_stasis_broadcast_rs.so";
const CONF: &str = "stasis_broadcast.conf";
const XML_NAME: &str = "res_stasis_broadcast_rs-en_US.xml";
/// The Makefile's default ASTETCDIR (Debian's and a source build's).
const ETCDIR: &str = "/etc/asterisk";
/// The Makefile's default ASTMODDIR, without its multiarch part, and ASTDATADIR: Debian's layout.
const DEBIAN_DATADIR: &str = "/usr/share/asterisk";

/// What `make install` needs to be told for this runtime's Asterisk: nothing
/// for Debian's layout (the Makefile's defaults), its directories for an
/// Asterisk installed from source (as the README says).
fn layout_vars(runtime: &Runtime) -> Vec<(&'static str, String)> {
    if runtime.datadir_in_root() == DEBIAN_DATADIR {
        Vec::new()
    } else {
        vec![("ASTMODDIR", runtime.modules_dir_in_root().to_owned()), ("ASTDATADIR", runtime.datadir_in_root().to_owned())]
    }
}

/// `make install` rebuilds and copies the module at the top of the
/// repository: one make at a time.
static MAKE: Mutex<()> = Mutex::new(());

/// A DESTDIR inside the root, removed on drop. Named like the harness's
/// instance directories, so one left by a killed test run is cleaned up by
/// the next.
struct DestDir {
    host: PathBuf,
}

impl DestDir {
    fn new(runtime: &Runtime, what: &str) -> DestDir {
        let host = runtime.host_path(&format!("/tmp/sbtest-{}-{what}", std::process::id()));
        let _ = fs::remove_dir_all(&host);
        fs::create_dir_all(&host).unwrap_or_else(|e| panic!("create {}: {e}", host.display()));
        DestDir { host }
    }

    /// Host path of a path below the DESTDIR.
    fn join(&self, below: &str) -> PathBuf {
        self.host.join(below.trim_start_matches('/'))
    }

    /// Every file and link below the DESTDIR, as paths below it.
    fn files(&self) -> BTreeSet<String> {
        fn walk(dir: &Path, top: &Path, out: &mut BTreeSet<String>) {
            for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if is_dir {
                    walk(&path, top, out);
                } else {
                    out.insert(format!("/{}", path.strip_prefix(top).expect("below the top").display()));
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(&self.host, &self.host, &mut out);
        out
    }
}

impl Drop for DestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.host);
    }
}

/// Runs `make <target> DESTDIR=<destdir> <vars…>` at the top of the
/// repository, with the Makefile's defaults for everything not given; panics
/// with make's output unless it succeeds.
fn make(target: &str, destdir: &DestDir, vars: &[(&str, &str)]) -> String {
    let _one_at_a_time = MAKE.lock().unwrap_or_else(|e| e.into_inner());
    let mut command = Command::new("make");
    command.current_dir(REPO).arg(target).arg(format!("DESTDIR={}", destdir.host.display()));
    for (name, value) in vars {
        command.arg(format!("{name}={value}"));
    }
    // Not the variables of a `make test` this may run under.
    for name in ["MAKEFLAGS", "MFLAGS", "MAKELEVEL", "ASTMODDIR", "ASTDATADIR", "ASTETCDIR", "DESTDIR"] {
        command.env_remove(name);
    }
    let out = command.stdin(Stdio::null()).output().expect("run make");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "make {target} failed ({}):\n{text}", out.status);
    text
}

/// Since `mark`, the module had nothing to say about stasis_broadcast.conf
/// (no WARNING, no ERROR, no "not found"), and it runs with the defaults of
/// `OPTIONS`, taken from that file. Called once the load or reload that read
/// it has returned (the barrier makes its lines all be there).
fn assert_config_read_cleanly(asterisk: &Asterisk, mark: usize) {
    let log = log_barrier(asterisk, mark);
    let complaints: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(CONF) && (l.contains("WARNING") || l.contains("ERROR") || l.contains("not found")))
        .collect();
    assert!(complaints.is_empty(), "the sample config is read without complaint:\n{}", complaints.join("\n"));
    let settings = asterisk.cli("stasis broadcast show settings");
    assert!(settings.contains(&format!("(from {CONF})")), "{settings}");
    for (name, default) in OPTIONS {
        let row = settings.lines().find(|l| l.trim_start().starts_with(&format!("{name} "))).unwrap_or_default();
        let value = row.trim_start().strip_prefix(name).unwrap_or_default().trim();
        assert!(value == default || value == format!("{default} ms"), "{name}: {default} expected:\n{settings}");
    }
}

/// CLI output without terminal colour sequences, whitespace squashed.
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ parameters final-byte
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    squash(&out)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o7777
}

#[test]
fn make_install_feeds_a_real_asterisk_and_make_uninstall_removes_exactly_that() {
    let runtime = Runtime::locate();
    let moddir = runtime.modules_dir_in_root().to_owned();
    let dest = DestDir::new(&runtime, "install");

    // 1. Install: exactly three files, where Debian's Asterisk looks for them.
    let vars = layout_vars(&runtime);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let datadir = runtime.datadir_in_root().to_owned();
    make("install", &dest, &vars);
    let module = format!("{moddir}/{OURS}");
    let xmldoc = format!("{datadir}/documentation/thirdparty/{XML_NAME}");
    let sample = format!("{ETCDIR}/stasis_broadcast.conf.sample");
    let installed: BTreeSet<String> = [module.clone(), xmldoc.clone(), sample.clone()].into();
    assert_eq!(dest.files(), installed, "make install installs the module, the XML docs and the sample, nothing else");
    assert_eq!(fs::read(dest.join(&module)).unwrap(), fs::read(repo_path(OURS)).unwrap(), "the module just built");
    assert_eq!(fs::read_to_string(dest.join(&xmldoc)).unwrap(), repo_file(XMLDOC));
    assert_eq!(fs::read_to_string(dest.join(&sample)).unwrap(), repo_file(SAMPLE_CONF));
    assert_eq!(mode(&dest.join(&module)), 0o755);
    assert_eq!(mode(&dest.join(&xmldoc)), 0o644);
    assert_eq!(mode(&dest.join(&sample)), 0o644);

    // 2. An Asterisk whose module and data directories are those of the tree,
    //    with the installed sample as its stasis_broadcast.conf.
    let installed_sample = fs::read_to_string(dest.join(&sample)).unwrap();
    let config = AsteriskConfig::new(Broadcaster::Neither)
        .load(OURS)
        .installed_in(&dest.host, &moddir, &datadir)
        .file(CONF, &installed_sample);
    let asterisk = Asterisk::start(config);
    let line = module_line(&asterisk, OURS).expect("module listed");
    assert!(is_running(&asterisk, OURS), "{line}");
    assert_config_read_cleanly(&asterisk, 0);
    let xml = repo_file(XMLDOC);

    let shown = asterisk.cli("core show application StasisBroadcast");
    println!("core show application StasisBroadcast:\n{shown}");
    let app = plain(&shown);
    let synopsis = xml_text_after(&xml, "<application name=\"StasisBroadcast\"", "synopsis").expect("synopsis");
    // Older releases (20.6.0 among them) print no [Provided By] section; the
    // releases that ship the C implementation all do.
    let provided_by = app.contains("[Provided By]");
    assert!(provided_by || !runtime.at_least(&[(20, 20), (22, 10), (23, 4)]), "{shown}");
    if provided_by {
        assert!(app.contains(&format!("[Synopsis] {synopsis} [Provided By] res_stasis_broadcast_rs")), "{shown}");
    } else {
        assert!(app.contains(&format!("[Synopsis] {synopsis} [Description]")), "{shown}");
    }
    // Asterisk writes the syntax from the parameter list: all four optional.
    assert!(app.contains("[Syntax] StasisBroadcast([timeout][,app_filter[,args[,notify_claimed]]])"), "{shown}");
    for parameter in ["timeout", "app_filter", "args", "notify_claimed"] {
        let text = xml_text_after(&xml, &format!("<parameter name=\"{parameter}\""), "para").expect("parameter text");
        let text = rendered(&text);
        assert!(app.contains(&format!("{parameter} {text}")), "argument {parameter} ({text}):\n{shown}");
    }
    let variable = xml_text_after(&xml, "<variable name=\"STASISSTATUS\"", "para").expect("variable text");
    let values: Vec<String> = ["SUCCESS", "FAILED", "TIMEOUT"]
        .iter()
        .map(|value| {
            let text = xml_inner(&xml, &format!("<value name=\"{value}\""), "value").expect("value text");
            format!("{value}: {text}")
        })
        .collect();
    let expected = format!("${{STASISSTATUS}}: {variable} {}", values.join(" "));
    assert!(app.contains(&expected), "STASISSTATUS and its values ({expected}):\n{shown}");
    assert!(app.contains("[See Also] Stasis(), stasis_broadcast.conf, 'stasis broadcast show broadcasts'"), "{shown}");
    // Every part but [Since] (Asterisk versions: none for a module of its own).
    for part in ["Synopsis", "Provided By", "Description", "Syntax", "Arguments", "See Also"] {
        if part == "Provided By" && !provided_by {
            continue;
        }
        assert!(!app.contains(&format!("[{part}] Not available")), "[{part}] documented:\n{shown}");
    }

    let modules = asterisk.cli("config show help");
    assert!(modules.lines().any(|l| l.trim() == "res_stasis_broadcast_rs"), "listed among modules:\n{modules}");
    let types = asterisk.cli("config show help res_stasis_broadcast_rs");
    println!("config show help res_stasis_broadcast_rs:\n{types}");
    let info_synopsis =
        xml_text_after(&xml, "<configInfo name=\"res_stasis_broadcast_rs\"", "synopsis").expect("synopsis");
    let general_synopsis = xml_text_after(&xml, "<configObject name=\"general\"", "synopsis").expect("synopsis");
    assert!(info_synopsis.contains("stasis_broadcast.conf"), "{info_synopsis}");
    assert!(plain(&types).contains(&info_synopsis), "{types}");
    assert!(plain(&types).contains(&format!("general -- {general_synopsis}")), "{types}");
    let general = asterisk.cli("config show help res_stasis_broadcast_rs general");
    for (name, _) in OPTIONS {
        assert!(general.lines().any(|l| l.starts_with(&format!("{name} "))), "option {name} listed:\n{general}");
    }

    let option = asterisk.cli("config show help res_stasis_broadcast_rs general default_timeout");
    println!("config show help res_stasis_broadcast_rs general default_timeout:\n{option}");
    let shown_option = plain(&option);
    let option_synopsis = xml_text_after(&xml, "<configOption name=\"default_timeout\"", "synopsis").expect("synopsis");
    let description = xml_text_after(&xml, "<configOption name=\"default_timeout\"", "para").expect("description");
    let description = rendered(&description);
    // Labelled sections on the newer releases; 20.6.0 prints the same texts unlabelled.
    if shown_option.contains("[Synopsis]") {
        assert!(shown_option.contains(&format!("[Synopsis] {option_synopsis}")), "{option}");
        assert!(shown_option.contains(&format!("[Description] {description}")), "{option}");
    } else {
        assert!(!runtime.at_least(&[(20, 20), (22, 10), (23, 4)]), "{option}");
        assert!(shown_option.contains(&format!("{option_synopsis} {description}")), "{option}");
    }
    assert!(shown_option.contains("default_timeout = [Unsigned Integer] (Default: 500)"), "{option}");

    // Every setting of the sample uncommented as written: read again on
    // reload, still without a word, to the same settings.
    let uncommented: String = installed_sample
        .lines()
        .map(|line| if commented_setting(line).is_some() { &line[1..] } else { line })
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(sample_options(&uncommented).is_empty(), "every setting uncommented");
    // (First another value, so the reload to the sample's is a visible change.)
    let etc_conf = asterisk.dir().join("etc").join(CONF);
    fs::write(&etc_conf, "[general]\nmax_timeout = 59999\n").unwrap();
    asterisk.cli(&format!("module reload {OURS}"));
    let settings = asterisk.cli("stasis broadcast show settings");
    assert!(settings.contains("59999 ms"), "{settings}");
    fs::write(&etc_conf, &uncommented).unwrap();
    let mark = asterisk.log_mark();
    let reloaded = asterisk.cli(&format!("module reload {OURS}"));
    println!("module reload {OURS}: {reloaded}");
    let changed = format!("{CONF} reloaded; new broadcasts use the new settings");
    logged_through(&asterisk, mark, &changed);
    assert_config_read_cleanly(&asterisk, mark);
    drop(asterisk);

    // 3. The instance is gone and the tree is as make install left it.
    assert_eq!(dest.files(), installed, "the harness's links into the tree are gone");

    // 4. Uninstall removes those three files and nothing else.
    let user_config = format!("{ETCDIR}/stasis_broadcast.conf");
    let other_module = format!("{moddir}/res_other.so");
    fs::write(dest.join(&user_config), "[general]\n").unwrap();
    fs::write(dest.join(&other_module), "not ours").unwrap();
    make("uninstall", &dest, &vars);
    let left: BTreeSet<String> = [user_config, other_module].into();
    assert_eq!(dest.files(), left, "make uninstall removes exactly what install installed");
    for dir in [moddir.as_str(), &format!("{datadir}/documentation/thirdparty"), ETCDIR] {
        assert!(dest.join(dir).is_dir(), "{dir} stays");
    }
}

#[test]
fn install_and_uninstall_follow_the_asterisk_directory_variables() {
    let runtime = Runtime::locate();
    let dest = DestDir::new(&runtime, "layout");
    // The layout of an Asterisk built from source.
    let vars = [
        ("ASTMODDIR", "/usr/lib/asterisk/modules"),
        ("ASTDATADIR", "/var/lib/asterisk"),
        ("ASTETCDIR", "/usr/local/etc/asterisk"),
    ];
    make("install", &dest, &vars);
    let installed: BTreeSet<String> = [
        format!("/usr/lib/asterisk/modules/{OURS}"),
        format!("/var/lib/asterisk/documentation/thirdparty/{XML_NAME}"),
        "/usr/local/etc/asterisk/stasis_broadcast.conf.sample".to_owned(),
    ]
    .into();
    assert_eq!(dest.files(), installed);
    make("uninstall", &dest, &vars);
    assert!(dest.files().is_empty(), "uninstall with the same variables removes them: {:?}", dest.files());
}

/// `StasisBroadcast` into `RESULT_<uniqueid>`, for the stock-configuration boot.
const STOCK_DIALPLAN: &str = "[incoming]
exten => 100,1,StasisBroadcast(10000,^stock-,,yes)
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Hangup()
";

/// Boots on the runtime's stock configuration (`prometheus.conf` kept or
/// removed) and checks what a new user would: the module runs whatever
/// res_prometheus did, a call offered to two applications is claimed by one,
/// and reload and unload work. (The documentation is the installed tree's
/// business: see the tests above.)
fn run_on_stock_configuration(stock: &Path, keep_prometheus_conf: bool) {
    // The stock files, minus prometheus.conf when asked: res_prometheus then
    // declines to load, as on a source build without `make samples`' file.
    let copy = std::env::temp_dir().join(format!("sbtest-stock-etc-{}", std::process::id()));
    let _ = fs::remove_dir_all(&copy);
    fs::create_dir_all(&copy).unwrap();
    for entry in fs::read_dir(stock).unwrap().flatten() {
        let name = entry.file_name();
        if entry.path().is_file() && (keep_prometheus_conf || name != "prometheus.conf") {
            fs::copy(entry.path(), copy.join(&name)).unwrap();
        }
    }
    let config = AsteriskConfig::new(ours())
        .stock_configuration(&copy)
        .dialplan(STOCK_DIALPLAN)
        .tolerate_load_failures()
        .label(if keep_prometheus_conf { "stock" } else { "stock-no-prometheus-conf" });
    let ast = Asterisk::start(config);
    let _ = fs::remove_dir_all(&copy);
    let boot_log = boot_log(&ast);
    assert!(
        is_running(&ast, OURS),
        "{OURS} is not running on the stock configuration:\n{}\n{}",
        module_line(&ast, OURS).unwrap_or_default(),
        boot_log.lines().filter(|l| l.contains("res_stasis_broadcast")).collect::<Vec<_>>().join("\n")
    );
    let prometheus = module_line(&ast, "res_prometheus.so");
    eprintln!("stock (prometheus.conf kept: {keep_prometheus_conf}): res_prometheus: {prometheus:?}");
    if !keep_prometheus_conf {
        assert!(prometheus.is_some(), "res_prometheus is not even present in this runtime");
        assert!(!is_running(&ast, "res_prometheus.so"), "res_prometheus did not decline without configuration");
    }
    let autoloaded = ast.cli("module show").lines().filter(|l| l.contains(".so")).count();
    eprintln!("stock: {autoloaded} modules loaded");
    assert!(autoloaded > BASE_MODULES.len() + 10, "autoload did not load the stock set ({autoloaded} modules)");

    // A call offered to two applications: one 204, one 409, StasisStart for the winner.
    let first = ast.connect_app("stock-first");
    let second = ast.connect_app("stock-second");
    let id = ast.originate(OriginateSpec::new("100", "incoming"));
    for app in [&first, &second] {
        assert!(
            app.wait_for_channel_event("CallBroadcast", &id, 10 * SECOND).is_some(),
            "{} got no CallBroadcast\n{}",
            app.name(),
            ast.diagnostics()
        );
    }
    assert_eq!(second.claim(&id).status, 204);
    assert_eq!(first.claim(&id).status, 409);
    assert!(second.wait_for_channel_event("StasisStart", &id, 10 * SECOND).is_some());
    assert_eq!(ast.continue_channel(&id).status, 204);
    assert_eq!(ast.wait_for_global(&format!("RESULT_{id}"), 10 * SECOND).as_deref(), Some("SUCCESS"));

    let mark = ast.log_mark();
    let reloaded = ast.cli(&format!("module reload {OURS}"));
    let log = log_barrier(&ast, mark);
    assert!(!log.contains("ERROR"), "{reloaded}\n{log}");
    assert!(is_running(&ast, OURS));
    drop((first, second));
    ast.cli(&format!("module unload {OURS}"));
    assert!(module_line(&ast, OURS).is_none(), "{OURS} did not unload:\n{}", ast.diagnostics());
}

/// The configuration a new user starts from: Debian's `/etc/asterisk` in the
/// packaged runtime, `make samples` in one built from source (autoload=yes,
/// every module the installation has). Once as shipped, once without
/// `prometheus.conf`, where res_prometheus declines to load: neither may keep
/// the module from loading or working.
#[test]
fn loads_and_works_on_the_stock_configuration_with_autoload() {
    let runtime = Runtime::locate();
    let stock = runtime.host_path(ETCDIR);
    assert!(
        stock.join("modules.conf").is_file(),
        "{} has no stock configuration in {ETCDIR} (scripts/runtime.sh and scripts/asterisk-source.sh put it there)",
        runtime.asterisk_version()
    );
    run_on_stock_configuration(&stock, true);
    run_on_stock_configuration(&stock, false);
}
