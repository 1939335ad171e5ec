//! Finds the Asterisk headers the module will be loaded with, generates
//! bindings for the few functions the module calls, and compiles the C shim.

use std::env;
use std::path::{Path, PathBuf};

const MODULE_DEFINES: [(&str, &str); 2] = [
    ("AST_MODULE", "\"res_stasis_broadcast_rs\""),
    ("AST_MODULE_SELF_SYM", "__internal_res_stasis_broadcast_rs_self"),
];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let headers = find_headers(&manifest);
    let include = manifest.join("include");

    for path in ["build.rs", "include/shim.h", "include/wrapper.h", "src/shim.c"] {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rerun-if-env-changed=ASTERISK_INCLUDE_DIR");
    println!("cargo:rerun-if-changed={}", headers.join("asterisk/buildopts.h").display());

    let features = HeaderFeatures::detect(&headers);
    let mut shim = cc::Build::new();
    for define in features.shim_defines() {
        shim.define(define, None);
    }
    shim.file("src/shim.c")
        .include(&headers)
        .include(&include)
        .define("_GNU_SOURCE", None)
        .flag_if_supported("-fno-strict-aliasing")
        // Asterisk's own headers trip this one; it says nothing about the shim.
        .flag_if_supported("-Wno-old-style-declaration")
        // asterisk/sorcery.h declares a const-qualified return type.
        .flag_if_supported("-Wno-ignored-qualifiers")
        .warnings(true);
    shim.compile("sbshim");

    let mut builder = bindgen::Builder::default()
        .header(include.join("wrapper.h").to_string_lossy())
        .clang_arg(format!("-I{}", headers.display()))
        .clang_arg(format!("-I{}", include.display()))
        // asterisk/utils.h uses blocks for RAII_VAR under clang.
        .clang_arg("-fblocks")
        .clang_arg("-D_GNU_SOURCE")
        .allowlist_function("sbshim_.*")
        .allowlist_function(
            "ast_channel_(name|uniqueid)|ast_check_hangup|ast_safe_sleep_conditional|ast_channel_defer_dtmf|ast_channel_timer",
        )
        .allowlist_function("pbx_builtin_(setvar|getvar)_helper|ast_unregister_application")
        .allowlist_function("stasis_app_(exec|send|get_all)|ao2_container_count")
        .allowlist_function(
            "ast_json_(object_create|object_set|string_create|unref|ref|deep_copy|copy|dump_string_format|free)",
        )
        .allowlist_function("ast_module_check")
        .allowlist_function("ast_cli_unregister_multiple")
        .allowlist_function("ast_config_destroy|ast_category_browse|ast_variable_browse")
        .allowlist_type("ast_variable|sbshim_config_status")
        // The struct only: res_prometheus's functions are looked up at run time,
        // so the module loads whether or not res_prometheus is there.
        .allowlist_type("prometheus_callback|prometheus_metrics_provider")
        .allowlist_type("ast_cli_entry|ast_cli_args|ast_json_encoding_format")
        .allowlist_type("ast_cli_command")
        // The module-served claim endpoint: HTTP, ACLs, crypt, version.
        .allowlist_function("ast_http_(send|get_auth|request_close_on_completion|error)|ast_variables_destroy")
        .allowlist_function("ast_(append_acl|apply_acl|acl_list_is_empty|free_acl_list)|ast_crypt_validate")
        .allowlist_function("ast_get_version|ast_ari_json_format|ast_json_(object_get|string_get|load_string)")
        .allowlist_type("ast_http_method|ast_http_auth|ast_acl_sense")
        // The claim node in ARI's own REST handler tree (src/host/ari_tree.rs).
        .allowlist_function("ast_ari_(add|remove)_handler|ast_ari_response_(error|no_content)")
        .allowlist_type("stasis_rest_handlers|stasis_rest_callback")
        .opaque_type("ast_tcptls_session_instance|ast_sockaddr|ast_acl_list|ast_sorcery|ast_ari_response")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .layout_tests(false)
        .derive_default(true)
        .generate_comments(false);
    for (name, value) in MODULE_DEFINES {
        builder = builder.clang_arg(format!("-D{name}={value}"));
    }
    let bindings = builder
        .generate()
        .unwrap_or_else(|err| panic!("bindgen failed on the Asterisk headers in {}: {err}", headers.display()));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs");
}

/// What the Asterisk headers offer, read from the headers themselves (never
/// inferred from a version number: distributions backport).
struct HeaderFeatures {
    /// `ast_channel_get_by_uniqueid` (20.15, 21.10, 22.5 and later).
    channel_get_by_uniqueid: bool,
}

impl HeaderFeatures {
    fn detect(headers: &Path) -> HeaderFeatures {
        let read = |name: &str| {
            let path = headers.join("asterisk").join(name);
            println!("cargo:rerun-if-changed={}", path.display());
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        };
        let channel_h = read("channel.h");
        HeaderFeatures { channel_get_by_uniqueid: declares(&channel_h, "ast_channel_get_by_uniqueid") }
    }

    /// Preprocessor defines for the shim (`SBSHIM_HAVE_…`).
    fn shim_defines(&self) -> Vec<&'static str> {
        let mut defines = Vec::new();
        if self.channel_get_by_uniqueid {
            defines.push("SBSHIM_HAVE_CHANNEL_GET_BY_UNIQUEID");
        }
        defines
    }
}

/// Whether a header declares the function `name` (a call-shaped occurrence).
fn declares(header: &str, name: &str) -> bool {
    header.match_indices(name).any(|(at, _)| {
        let before = header[..at].chars().next_back();
        let after = header[at + name.len()..].trim_start();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_') && after.starts_with('(')
    })
}

/// `$ASTERISK_INCLUDE_DIR`, then `asterisk-headers/` (filled by `make headers`),
/// then `/usr/include` when it carries Asterisk's development headers.
fn find_headers(manifest: &Path) -> PathBuf {
    let has_module_h = |dir: &Path| dir.join("asterisk/module.h").is_file();
    if let Some(dir) = env::var_os("ASTERISK_INCLUDE_DIR") {
        let dir = PathBuf::from(dir);
        if has_module_h(&dir) {
            return dir;
        }
        panic!(
            "ASTERISK_INCLUDE_DIR={} has no asterisk/module.h; point it at the directory that holds asterisk.h and asterisk/",
            dir.display()
        );
    }
    for dir in [manifest.join("asterisk-headers"), PathBuf::from("/usr/include")] {
        if has_module_h(&dir) {
            return dir;
        }
    }
    panic!(
        "Asterisk headers not found: set ASTERISK_INCLUDE_DIR to the directory holding asterisk.h and asterisk/ \
         (e.g. /usr/include with asterisk-dev installed), or run `make headers` to copy them from the development runtime"
    );
}
