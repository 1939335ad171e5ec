//! Reading a configuration file with Asterisk's config API (so `#include`,
//! templates and the config directory work as for every other module).

use crate::ffi;

/// The caller's own type for one category (`[name]`) of a file, built from
/// what Asterisk read: the host layer fills it without knowing it.
pub trait FromCategory: Sized {
    /// One `name = value` variable of the category.
    type Variable;
    fn variable(name: String, value: String, line: i32) -> Self::Variable;
    fn category(name: String, variables: Vec<Self::Variable>) -> Self;
}

/// What Asterisk found for a configuration file.
pub enum ConfigFile<C> {
    Missing,
    /// It exists but does not parse (Asterisk has logged where).
    Invalid,
    /// Its categories, in file order.
    Loaded(Vec<C>),
}

/// Reads `filename` from Asterisk's configuration directory.
pub fn read<C: FromCategory>(filename: &str) -> ConfigFile<C> {
    let name = super::cstring(filename);
    let mut status: std::ffi::c_int = 0;
    // SAFETY: NUL-terminated name; the shim writes `status` and returns an
    // owned config (or NULL), destroyed below.
    let cfg = unsafe { ffi::sbshim_config_load(name.as_ptr(), &mut status) };
    if cfg.is_null() {
        return if status == ffi::sbshim_config_status_SBSHIM_CONFIG_INVALID as std::ffi::c_int {
            ConfigFile::Invalid
        } else {
            ConfigFile::Missing
        };
    }
    let mut categories = Vec::new();
    let mut category: *mut std::ffi::c_char = std::ptr::null_mut();
    loop {
        // SAFETY: `cfg` is a live config; `category` is NULL or a name this
        // same function returned for it.
        category = unsafe { ffi::ast_category_browse(cfg, category) };
        if category.is_null() {
            break;
        }
        let mut variables = Vec::new();
        // SAFETY: as above; the variables belong to `cfg` and are only read.
        let mut variable = unsafe { ffi::ast_variable_browse(cfg, category) };
        while !variable.is_null() {
            // SAFETY: a node of the list owned by `cfg`, which is alive.
            let node = unsafe { &*variable };
            variables.push(C::variable(super::string_from(node.name), super::string_from(node.value), node.lineno));
            variable = node.next;
        }
        categories.push(C::category(super::string_from(category), variables));
    }
    // SAFETY: we own `cfg` and nothing borrowed from it is kept (all copied).
    unsafe { ffi::ast_config_destroy(cfg) };
    ConfigFile::Loaded(categories)
}
