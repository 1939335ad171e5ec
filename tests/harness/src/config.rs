//! What one Asterisk instance is made of: the broadcaster module, dialplan,
//! ARI users, modules and any extra configuration files.

use crate::runtime::Runtime;
use std::path::PathBuf;

/// Modules loaded in every instance (`autoload=no`): the minimal set found by
/// experiment for ARI WebSocket apps, ARI originate of Local channels,
/// `Stasis()`, `continue`, `/events/claim`, `GLOBAL()` and `Playtones()`.
/// Answer/Wait/Set/GotoIf/Hangup and Local channels are in the core.
pub const BASE_MODULES: &[&str] = &[
    "pbx_config.so",           // extensions.conf
    "func_global.so",          // GLOBAL()
    "app_playtones.so",        // Playtones()
    "res_http_websocket.so",   // ARI event WebSocket
    "res_sorcery_config.so",   // needed by res_websocket_client
    "res_websocket_client.so", // res_ari links against it (where it exists, see VERSIONED_MODULES)
    "res_stasis.so",           // Stasis core
    "res_stasis_answer.so",    // required by res_ari_channels
    "res_stasis_playback.so",  // required by res_ari_channels
    "res_stasis_recording.so", // required by res_ari_channels
    "res_stasis_snoop.so",     // required by res_ari_channels
    "res_ari.so",              // /ari HTTP
    "res_ari_model.so",        // ARI validators
    "res_ari_applications.so", // /ari/applications
    "res_ari_asterisk.so",     // /ari/asterisk (info, global variables)
    "res_ari_channels.so",     // /ari/channels (originate, continue, hangup)
    "res_ari_events.so",       // /ari/events WebSocket and /ari/events/claim
    "app_stasis.so",           // Stasis()
];

/// Modules of `BASE_MODULES` that older releases do not have (res_ari needs
/// res_websocket_client only from 22.? on): loaded where the runtime has them.
pub const VERSIONED_MODULES: &[&str] = &["res_websocket_client.so"];

/// The C reference modules.
pub(crate) const REFERENCE_MODULES: &[&str] =
    &["res_stasis_broadcast.so", "app_stasis_broadcast.so"];

/// File name our Rust module gets in the instance's module directory.
pub(crate) const OURS_NAME: &str = "res_stasis_broadcast_rs.so";

/// Which StasisBroadcast implementation the instance loads.
#[derive(Clone, Debug)]
pub enum Broadcaster {
    /// Our Rust module: host path of the built `.so`, copied in as `res_stasis_broadcast_rs.so`.
    Ours(PathBuf),
    /// The C reference modules shipped in the root (`res_stasis_broadcast.so`, `app_stasis_broadcast.so`).
    Reference,
    /// No broadcaster at all.
    Neither,
}

/// One `ari.conf` user section.
#[derive(Clone, Debug)]
pub struct AriUser {
    /// Section (user) name.
    pub name: String,
    /// Password, in `password_format`.
    pub password: String,
    /// `read_only` setting.
    pub read_only: bool,
    /// `password_format`: `plain` or `crypt`.
    pub password_format: String,
    /// Extra raw lines for the section (e.g. `permit=`, `deny=`, `acl=`).
    pub extra: String,
}

impl AriUser {
    /// A read-write user with a plain password.
    pub fn plain(name: &str, password: &str) -> AriUser {
        AriUser {
            name: name.into(),
            password: password.into(),
            read_only: false,
            password_format: "plain".into(),
            extra: String::new(),
        }
    }

    /// Sets `read_only`.
    pub fn read_only(mut self, yes: bool) -> AriUser {
        self.read_only = yes;
        self
    }

    /// A user whose `password` is a crypt(3) hash (`password_format=crypt`).
    pub fn crypt(name: &str, hash: &str) -> AriUser {
        AriUser {
            password_format: "crypt".into(),
            ..AriUser::plain(name, hash)
        }
    }

    /// Appends raw lines to the section.
    pub fn extra(mut self, lines: &str) -> AriUser {
        self.extra.push_str(lines);
        if !self.extra.ends_with('\n') {
            self.extra.push('\n');
        }
        self
    }

    pub(crate) fn render(&self) -> String {
        format!(
            "[{}]\ntype=user\nread_only={}\npassword={}\npassword_format={}\n{}\n",
            self.name,
            if self.read_only { "yes" } else { "no" },
            self.password,
            self.password_format,
            self.extra
        )
    }
}

/// Builder for one instance's configuration.
#[derive(Clone, Debug)]
pub struct AsteriskConfig {
    pub(crate) broadcaster: Broadcaster,
    pub(crate) dialplan: String,
    pub(crate) ari_users: Vec<AriUser>,
    pub(crate) ari_general: String,
    /// Raw ari.conf sections after the users (outbound WebSockets).
    pub(crate) ari_sections: String,
    /// websocket_client.conf (empty unless an outbound WebSocket is configured).
    pub(crate) websocket_clients: String,
    pub(crate) http_general: String,
    pub(crate) channelvars: Option<String>,
    pub(crate) files: Vec<(String, String)>,
    pub(crate) modules: Vec<String>,
    pub(crate) link_reference: bool,
    pub(crate) module_files: Vec<(String, PathBuf)>,
    pub(crate) options: String,
    pub(crate) strict_modules: bool,
    pub(crate) label: Option<String>,
    pub(crate) install_tree: Option<InstallTree>,
    pub(crate) own_rest_api: bool,
    pub(crate) valgrind: bool,
    pub(crate) stock_etc: Option<PathBuf>,
    pub(crate) callgrind: bool,
}

impl AsteriskConfig {
    /// A configuration with the given broadcaster, the `[hold]` context and user `test`/`test`.
    pub fn new(broadcaster: Broadcaster) -> AsteriskConfig {
        AsteriskConfig {
            broadcaster,
            dialplan: String::new(),
            ari_users: vec![AriUser::plain("test", "test")],
            ari_general: String::new(),
            ari_sections: String::new(),
            websocket_clients: String::new(),
            http_general: String::new(),
            channelvars: None,
            files: Vec::new(),
            modules: Vec::new(),
            link_reference: false,
            module_files: Vec::new(),
            options: String::new(),
            strict_modules: true,
            label: None,
            install_tree: None,
            own_rest_api: false,
            valgrind: false,
            stock_etc: None,
            callgrind: false,
        }
    }

    /// Starts from a stock configuration directory (host path): every file
    /// in it is copied into the instance's `etc/` (a `.sample` suffix
    /// dropped, as `make samples` does), its `modules.conf` kept as it is
    /// (autoload and all) with only the harness's `load`/`noload` lines
    /// added. The harness then writes just what it must own: directories
    /// (`asterisk.conf`), the HTTP port, ARI users, the log files it reads and
    /// the dialplan. Everything else (cdr, manager, res_prometheus, …) is
    /// the stock file's.
    pub fn stock_configuration(mut self, dir: impl Into<PathBuf>) -> AsteriskConfig {
        self.stock_etc = Some(dir.into());
        self
    }

    /// Runs Asterisk under valgrind memcheck (`--leak-check=full`, definite
    /// and indirect leaks, debug information kept for unloaded modules so
    /// their frames are named); the report is read with
    /// [`crate::Asterisk::stop_with_valgrind_report`]. Boot and stop get the
    /// longer deadlines a valgrind run needs.
    pub fn under_valgrind(mut self) -> AsteriskConfig {
        self.valgrind = true;
        self
    }

    /// Runs Asterisk under valgrind's callgrind, instrumenting nothing until
    /// told (`--instr-atstart=no`: boot runs at near-native speed and is not
    /// counted): the caller switches instrumentation on, zeroes and dumps
    /// through `vgdb` ([`crate::Asterisk::callgrind`]); each dump is a file
    /// `callgrind.out.<n>` in the instance's directory. The deadlines of
    /// [`AsteriskConfig::under_valgrind`].
    pub fn under_callgrind(mut self) -> AsteriskConfig {
        self.valgrind = true;
        self.callgrind = true;
        self
    }

    /// Appends dialplan text (contexts) to extensions.conf, after `[hold]`.
    pub fn dialplan(mut self, text: &str) -> AsteriskConfig {
        self.dialplan.push_str(text);
        self.dialplan.push('\n');
        self
    }

    /// Adds an ari.conf user (replaces the default `test` user if it has that name).
    pub fn ari_user(mut self, user: AriUser) -> AsteriskConfig {
        self.ari_users.retain(|u| u.name != user.name);
        self.ari_users.push(user);
        self
    }

    /// Appends a raw line to ari.conf `[general]` (e.g. `auth_realm=...`).
    pub fn ari_general(mut self, line: &str) -> AsteriskConfig {
        self.ari_general.push_str(line);
        self.ari_general.push('\n');
        self
    }

    /// A persistent outbound WebSocket (Asterisk 20.15+, 21.10+, 22.5+, 23+):
    /// ari.conf section `[id]` (`type=outbound_websocket`) serving `apps`
    /// (comma-separated) with the rights of the ARI user `local_ari_user`
    /// (which must have a plain password), over the `websocket_client.conf`
    /// connection `<id>-client` to `uri` (`ws://127.0.0.1:PORT`, see
    /// [`crate::OutboundServer`]), reconnecting every 500 ms.
    pub fn outbound_websocket(mut self, id: &str, apps: &str, local_ari_user: &str, uri: &str) -> AsteriskConfig {
        self.ari_sections.push_str(&format!(
            "[{id}]\ntype = outbound_websocket\nwebsocket_client_id = {id}-client\napps = {apps}\nlocal_ari_user = {local_ari_user}\n\n"
        ));
        self.websocket_clients.push_str(&format!(
            "[{id}-client]\ntype = websocket_client\nconnection_type = persistent\nuri = {uri}\nprotocols = ari\n\
             reconnect_interval = 500\nconnection_timeout = 2000\n\n"
        ));
        self
    }

    /// Appends a raw line to http.conf `[general]` (e.g. `sessionlimit = 1000`:
    /// every ARI WebSocket holds one of Asterisk's 100 default HTTP sessions).
    pub fn http_general(mut self, line: &str) -> AsteriskConfig {
        self.http_general.push_str(line);
        self.http_general.push('\n');
        self
    }

    /// Sets ari.conf `channelvars` (comma-separated variable names).
    pub fn channelvars(mut self, vars: &str) -> AsteriskConfig {
        self.channelvars = Some(vars.into());
        self
    }

    /// Writes a config file into the etc dir, replacing a generated one of the same name.
    pub fn file(mut self, name: &str, content: &str) -> AsteriskConfig {
        self.files.retain(|(n, _)| n != name);
        self.files.push((name.into(), content.into()));
        self
    }

    /// Adds a `load =>` line for a module (file name, e.g. `res_ari_bridges.so`).
    pub fn load(mut self, module: &str) -> AsteriskConfig {
        if !self.modules.iter().any(|m| m == module) {
            self.modules.push(module.into());
        }
        self
    }

    /// Links the C reference modules into the module dir even when they are not the broadcaster (not loaded unless `load` asks).
    pub fn link_reference_modules(mut self) -> AsteriskConfig {
        self.link_reference = true;
        self
    }

    /// Copies a host file into the instance's module dir under `name` (not loaded unless `load` asks).
    pub fn module_file(mut self, name: &str, host_path: impl Into<PathBuf>) -> AsteriskConfig {
        self.module_files.push((name.into(), host_path.into()));
        self
    }

    /// Appends a raw line to asterisk.conf `[options]` (e.g. `debug = 3`).
    pub fn option(mut self, line: &str) -> AsteriskConfig {
        self.options.push_str(line);
        self.options.push('\n');
        self
    }

    /// Do not panic at start when a `load =>` module is not Running (for load-failure tests).
    pub fn tolerate_load_failures(mut self) -> AsteriskConfig {
        self.strict_modules = false;
        self
    }

    /// Names the instance in log dumps (default: the instance dir name).
    pub fn label(mut self, label: &str) -> AsteriskConfig {
        self.label = Some(label.into());
        self
    }

    /// Runs the instance from an installation tree, as made by
    /// `make install DESTDIR=<destdir>` with `destdir` (a host path) inside
    /// the root: `astmoddir` is `<destdir><moddir>` and `astdatadir` is
    /// `<destdir><datadir>`, so modules and the XML documentation Asterisk
    /// reads at startup come from there. What the tree lacks (Asterisk's
    /// other modules, the rest of its data directory) is linked in from the
    /// root's own installation for as long as the instance runs; those links
    /// are removed when it stops, leaving the tree as it was. Use it with
    /// `Broadcaster::Neither` and `load` for a module installed in the tree.
    pub fn installed_in(
        mut self,
        destdir: impl Into<PathBuf>,
        moddir: &str,
        datadir: &str,
    ) -> AsteriskConfig {
        self.install_tree = Some(InstallTree {
            destdir: destdir.into(),
            moddir: moddir.into(),
            datadir: datadir.into(),
        });
        self
    }

    /// Gives the instance its own data directory (`astdatadir`): a copy of
    /// the root's `rest-api/` (ARI's API description, read by ARI at every
    /// api-docs request, which the test may then change, see
    /// `Asterisk::rest_api_dir`) and links to the root's data directory for
    /// everything else. Real files, not links: ARI refuses an api-docs file
    /// whose real path leaves the `rest-api/` directory.
    pub fn own_rest_api(mut self) -> AsteriskConfig {
        self.own_rest_api = true;
        self
    }

    /// Modules given `load =>`, in order.
    pub(crate) fn load_list(&self, runtime: &Runtime) -> Vec<String> {
        let mut list: Vec<String> = BASE_MODULES
            .iter()
            .filter(|m| !VERSIONED_MODULES.contains(m) || runtime.has_module(m))
            .map(|s| s.to_string())
            .collect();
        match &self.broadcaster {
            Broadcaster::Ours(_) => list.push(OURS_NAME.into()),
            Broadcaster::Reference => list.extend(REFERENCE_MODULES.iter().map(|s| s.to_string())),
            Broadcaster::Neither => {}
        }
        for m in &self.modules {
            if !list.contains(m) {
                list.push(m.clone());
            }
        }
        list
    }

    /// Broadcaster modules given `noload =>` (those neither chosen nor asked for).
    pub(crate) fn noload_list(&self, runtime: &Runtime) -> Vec<String> {
        let load = self.load_list(runtime);
        REFERENCE_MODULES
            .iter()
            .map(|s| s.to_string())
            .chain(std::iter::once(OURS_NAME.to_string()))
            .filter(|m| !load.contains(m))
            .collect()
    }
}

/// An installation tree under a DESTDIR (see `AsteriskConfig::installed_in`).
#[derive(Clone, Debug)]
pub(crate) struct InstallTree {
    /// Host path of the DESTDIR, inside the root.
    pub(crate) destdir: PathBuf,
    /// Module directory below the DESTDIR (`/usr/lib/…/asterisk/modules`).
    pub(crate) moddir: String,
    /// Data directory below the DESTDIR (`/usr/share/asterisk`).
    pub(crate) datadir: String,
}
