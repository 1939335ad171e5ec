//! `stasis_broadcast.conf`: parsing into an immutable [`Settings`] snapshot,
//! and the snapshot every new broadcast starts from.
//!
//! Parsing is pure (the host layer hands over the file's sections already read
//! by Asterisk's config API), so every option and every bad value is
//! unit-tested here. A reload swaps the whole snapshot at once: a broadcast
//! keeps the `Arc<Settings>` it started with until it ends. The snapshot in
//! force lives in a [`Current`] that the module's state owns.

use std::fmt;
use std::sync::{Arc, RwLock};

use crate::broadcast::args::{is_true, Defaults, DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS};
// Defined with the registry that applies it; set here.
pub use crate::broadcast::registry::ClaimPolicy;

pub const FILE_NAME: &str = "stasis_broadcast.conf";
const SECTION: &str = "general";
/// Largest `max_timeout` accepted: one day.
const MAX_TIMEOUT_LIMIT_MS: u32 = 86_400_000;

/// What to do with an `app_filter` that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterErrorPolicy {
    /// No broadcast; `STASISSTATUS=FAILED`.
    Fail,
    /// Offer the call to every application, as the C reference does.
    BroadcastAll,
}

/// Who serves `POST /ari/events/claim`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimEndpoint {
    /// `Ari` where the running Asterisk routes claims safely, else `Module`.
    Auto,
    /// res_ari_events, through the optional API.
    Ari,
    /// This module's node in ARI's own REST handler tree (HTTP and
    /// WebSocket); its own HTTP handler where the node cannot be installed.
    Module,
    /// This module's own HTTP handler beside ARI (HTTP only).
    Http,
}

/// One effective configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub default_timeout_ms: u32,
    pub max_timeout_ms: u32,
    pub filter_error: FilterErrorPolicy,
    pub claim_policy: ClaimPolicy,
    pub claim_endpoint: ClaimEndpoint,
    pub notify_claimed_default: bool,
    /// Where these settings came from, for `show settings`.
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Built-in defaults: no file was read yet.
    BuiltIn,
    /// The file does not exist.
    FileMissing,
    /// The file exists but Asterisk could not parse it.
    FileInvalid,
    /// Read from the file.
    File,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            default_timeout_ms: DEFAULT_TIMEOUT_MS,
            max_timeout_ms: MAX_TIMEOUT_MS,
            filter_error: FilterErrorPolicy::Fail,
            claim_policy: ClaimPolicy::Registered,
            claim_endpoint: ClaimEndpoint::Auto,
            notify_claimed_default: false,
            origin: Origin::BuiltIn,
        }
    }
}

impl Settings {
    /// The defaults a dialplan call's arguments are parsed against.
    pub fn arg_defaults(&self) -> Defaults {
        Defaults {
            timeout_ms: self.default_timeout_ms,
            max_timeout_ms: self.max_timeout_ms,
            notify_claimed: self.notify_claimed_default,
        }
    }
}

/// One `name = value` line of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub value: String,
    pub line: i32,
}

/// One `[section]` of the file and its lines, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub entries: Vec<Entry>,
}

/// Something in the file that was not used as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    pub line: i32,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{FILE_NAME} line {}: {}", self.line, self.message)
        } else {
            write!(f, "{FILE_NAME}: {}", self.message)
        }
    }
}

/// The settings in `sections`, with a warning for every value not used as written.
pub fn parse(sections: &[Section]) -> (Settings, Vec<ConfigWarning>) {
    let defaults = Settings::default();
    let mut settings = Settings { origin: Origin::File, ..defaults.clone() };
    let mut warnings = Vec::new();
    let mut default_timeout_line = 0;
    for section in sections {
        if section.name != SECTION {
            warnings.push(ConfigWarning {
                line: section.entries.first().map_or(0, |entry| entry.line),
                message: format!("unknown section [{}] ignored (the options go in [{SECTION}])", section.name),
            });
            continue;
        }
        for entry in &section.entries {
            let value = entry.value.trim();
            let word = value.to_ascii_lowercase();
            // Ok, or Err((what was expected, what is used instead)).
            let outcome = match entry.name.to_ascii_lowercase().as_str() {
                "default_timeout" => {
                    default_timeout_line = entry.line;
                    let parsed = parse_ms(value, 0, MAX_TIMEOUT_LIMIT_MS);
                    set_or_default(&mut settings.default_timeout_ms, parsed, defaults.default_timeout_ms)
                        .ok_or_else(|| ("milliseconds, 0 or more".to_owned(), format!("{} ms", defaults.default_timeout_ms)))
                }
                "max_timeout" => {
                    let parsed = parse_ms(value, 1, MAX_TIMEOUT_LIMIT_MS);
                    set_or_default(&mut settings.max_timeout_ms, parsed, defaults.max_timeout_ms).ok_or_else(|| {
                        (format!("milliseconds, 1 to {MAX_TIMEOUT_LIMIT_MS}"), format!("{} ms", defaults.max_timeout_ms))
                    })
                }
                "filter_error" => {
                    let parsed = choice(&word, &[("fail", FilterErrorPolicy::Fail), ("broadcast_all", FilterErrorPolicy::BroadcastAll)]);
                    set_or_default(&mut settings.filter_error, parsed, defaults.filter_error)
                        .ok_or_else(|| ("fail or broadcast_all".to_owned(), defaults.filter_error.to_string()))
                }
                "claim_policy" => {
                    let parsed = choice(
                        &word,
                        &[("registered", ClaimPolicy::Registered), ("offered", ClaimPolicy::Offered), ("any", ClaimPolicy::Any)],
                    );
                    set_or_default(&mut settings.claim_policy, parsed, defaults.claim_policy)
                        .ok_or_else(|| ("registered, offered or any".to_owned(), defaults.claim_policy.to_string()))
                }
                "claim_endpoint" => {
                    let parsed = choice(
                        &word,
                        &[
                            ("auto", ClaimEndpoint::Auto),
                            ("ari", ClaimEndpoint::Ari),
                            ("module", ClaimEndpoint::Module),
                            ("http", ClaimEndpoint::Http),
                        ],
                    );
                    set_or_default(&mut settings.claim_endpoint, parsed, defaults.claim_endpoint)
                        .ok_or_else(|| ("auto, ari, module or http".to_owned(), defaults.claim_endpoint.to_string()))
                }
                "notify_claimed_default" => {
                    set_or_default(&mut settings.notify_claimed_default, parse_bool(value), defaults.notify_claimed_default)
                        .ok_or_else(|| ("yes or no".to_owned(), "no".to_owned()))
                }
                _ => {
                    warnings.push(ConfigWarning {
                        line: entry.line,
                        message: format!("unknown option '{}' in [{SECTION}] ignored", entry.name),
                    });
                    Ok(())
                }
            };
            if let Err((expected, used)) = outcome {
                warnings.push(ConfigWarning {
                    line: entry.line,
                    message: format!("invalid value '{}' for {} ({expected}); using {used}", entry.value, entry.name),
                });
            }
        }
    }
    if settings.default_timeout_ms > settings.max_timeout_ms {
        warnings.push(ConfigWarning {
            line: default_timeout_line,
            message: format!(
                "default_timeout {} ms is above max_timeout {} ms; using {} ms",
                settings.default_timeout_ms, settings.max_timeout_ms, settings.max_timeout_ms
            ),
        });
        settings.default_timeout_ms = settings.max_timeout_ms;
    }
    (settings, warnings)
}

/// Stores `parsed`, or `default` when there is none; Some(()) when parsed.
fn set_or_default<T>(slot: &mut T, parsed: Option<T>, default: T) -> Option<()> {
    let found = parsed.is_some();
    *slot = parsed.unwrap_or(default);
    found.then_some(())
}

/// The value of the word (already lowercase) among `choices`.
fn choice<T: Copy>(word: &str, choices: &[(&str, T)]) -> Option<T> {
    choices.iter().find(|(name, _)| *name == word).map(|(_, value)| *value)
}

/// A plain decimal number of milliseconds within `min..=max` (no sign, no unit).
fn parse_ms(value: &str, min: u32, max: u32) -> Option<u32> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<u32>().ok().filter(|ms| (min..=max).contains(ms))
}

/// Asterisk's `ast_true` / `ast_false` words; anything else is not a boolean.
fn parse_bool(value: &str) -> Option<bool> {
    if is_true(value) {
        return Some(true);
    }
    ["no", "false", "n", "f", "0", "off"]
        .iter()
        .any(|word| value.eq_ignore_ascii_case(word))
        .then_some(false)
}

impl fmt::Display for FilterErrorPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FilterErrorPolicy::Fail => "fail",
            FilterErrorPolicy::BroadcastAll => "broadcast_all",
        })
    }
}

impl fmt::Display for ClaimPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClaimPolicy::Registered => "registered",
            ClaimPolicy::Offered => "offered",
            ClaimPolicy::Any => "any",
        })
    }
}

impl fmt::Display for ClaimEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClaimEndpoint::Auto => "auto",
            ClaimEndpoint::Ari => "ari",
            ClaimEndpoint::Module => "module",
            ClaimEndpoint::Http => "http",
        })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::BuiltIn => "built-in defaults",
            Origin::FileMissing => "defaults (stasis_broadcast.conf not found)",
            Origin::FileInvalid => "defaults (stasis_broadcast.conf could not be parsed)",
            Origin::File => "stasis_broadcast.conf",
        })
    }
}

/// The settings new broadcasts start with, swapped whole on reload.
#[derive(Default)]
pub struct Current {
    settings: RwLock<Arc<Settings>>,
}

impl Current {
    /// The snapshot in force.
    pub fn current(&self) -> Arc<Settings> {
        Arc::clone(&self.settings.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Makes `settings` the current snapshot; returns the previous one.
    pub fn replace(&self, settings: Settings) -> Arc<Settings> {
        let mut current = self.settings.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::replace(&mut *current, Arc::new(settings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn general(lines: &[(&str, &str)]) -> Vec<Section> {
        vec![Section {
            name: "general".into(),
            entries: lines
                .iter()
                .enumerate()
                .map(|(i, (name, value))| Entry { name: (*name).into(), value: (*value).into(), line: i as i32 + 2 })
                .collect(),
        }]
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let (settings, warnings) = parse(&[]);
        assert_eq!(settings, Settings { origin: Origin::File, ..Settings::default() });
        assert!(warnings.is_empty());
        assert_eq!(settings.default_timeout_ms, 500);
        assert_eq!(settings.max_timeout_ms, 60000);
        assert_eq!(settings.filter_error, FilterErrorPolicy::Fail);
        assert_eq!(settings.claim_policy, ClaimPolicy::Registered);
        assert_eq!(settings.claim_endpoint, ClaimEndpoint::Auto);
        assert!(!settings.notify_claimed_default);
    }

    #[test]
    fn every_option_is_read() {
        let (settings, warnings) = parse(&general(&[
            ("default_timeout", "1500"),
            ("max_timeout", "20000"),
            ("filter_error", "broadcast_all"),
            ("claim_policy", "Offered"),
            ("claim_endpoint", "module"),
            ("notify_claimed_default", "yes"),
        ]));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(settings.default_timeout_ms, 1500);
        assert_eq!(settings.max_timeout_ms, 20000);
        assert_eq!(settings.filter_error, FilterErrorPolicy::BroadcastAll);
        assert_eq!(settings.claim_policy, ClaimPolicy::Offered);
        assert_eq!(settings.claim_endpoint, ClaimEndpoint::Module);
        assert!(settings.notify_claimed_default);
        assert_eq!(
            settings.arg_defaults(),
            Defaults { timeout_ms: 1500, max_timeout_ms: 20000, notify_claimed: true }
        );
    }

    #[test]
    fn each_bad_value_is_named_and_replaced_by_the_default() {
        let cases = [
            ("default_timeout", "soon", "invalid value 'soon' for default_timeout (milliseconds, 0 or more); using 500 ms"),
            ("default_timeout", "-5", "invalid value '-5' for default_timeout (milliseconds, 0 or more); using 500 ms"),
            ("max_timeout", "0", "invalid value '0' for max_timeout (milliseconds, 1 to 86400000); using 60000 ms"),
            ("max_timeout", "99999999999", "invalid value '99999999999' for max_timeout (milliseconds, 1 to 86400000); using 60000 ms"),
            ("filter_error", "ignore", "invalid value 'ignore' for filter_error (fail or broadcast_all); using fail"),
            ("claim_policy", "first", "invalid value 'first' for claim_policy (registered, offered or any); using registered"),
            ("claim_endpoint", "tree", "invalid value 'tree' for claim_endpoint (auto, ari, module or http); using auto"),
            ("notify_claimed_default", "maybe", "invalid value 'maybe' for notify_claimed_default (yes or no); using no"),
        ];
        for (name, value, expected) in cases {
            let (settings, warnings) = parse(&general(&[(name, value)]));
            assert_eq!(settings, Settings { origin: Origin::File, ..Settings::default() }, "{name}={value}");
            assert_eq!(warnings.len(), 1, "{name}={value}: {warnings:?}");
            assert_eq!(warnings[0].message, expected);
            assert_eq!(warnings[0].to_string(), format!("stasis_broadcast.conf line 2: {expected}"));
        }
    }

    #[test]
    fn a_bad_value_after_a_good_one_falls_back_to_the_default() {
        let (settings, warnings) = parse(&general(&[("claim_policy", "any"), ("claim_policy", "bogus")]));
        assert_eq!(settings.claim_policy, ClaimPolicy::Registered);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn default_timeout_above_max_timeout_is_clamped() {
        let (settings, warnings) = parse(&general(&[("default_timeout", "5000"), ("max_timeout", "2000")]));
        assert_eq!(settings.default_timeout_ms, 2000);
        assert_eq!(settings.max_timeout_ms, 2000);
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].line, 2);
        assert_eq!(warnings[0].message, "default_timeout 5000 ms is above max_timeout 2000 ms; using 2000 ms");
    }

    #[test]
    fn unknown_options_and_sections_are_reported() {
        let mut sections = general(&[("defualt_timeout", "100")]);
        sections.push(Section { name: "global".into(), entries: vec![Entry { name: "x".into(), value: "1".into(), line: 9 }] });
        let (settings, warnings) = parse(&sections);
        assert_eq!(settings.default_timeout_ms, 500);
        let messages: Vec<_> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "stasis_broadcast.conf line 2: unknown option 'defualt_timeout' in [general] ignored",
                "stasis_broadcast.conf line 9: unknown section [global] ignored (the options go in [general])",
            ]
        );
    }

    #[test]
    fn claim_policies_decide_who_may_claim() {
        use ClaimPolicy::*;
        let table = [
            // (policy, registered, offered, allowed)
            (Registered, true, false, true),
            (Registered, false, true, false),
            (Offered, true, true, true),
            (Offered, true, false, false),
            (Offered, false, true, false),
            (Any, false, false, true),
        ];
        for (policy, registered, offered, allowed) in table {
            assert_eq!(policy.allows(registered, offered), allowed, "{policy} {registered} {offered}");
        }
    }

    #[test]
    fn booleans_take_asterisks_words() {
        for yes in ["yes", "TRUE", "1", "on", "y"] {
            assert_eq!(parse_bool(yes), Some(true), "{yes}");
        }
        for no in ["no", "False", "0", "off", "n"] {
            assert_eq!(parse_bool(no), Some(false), "{no}");
        }
        assert_eq!(parse_bool("2"), None);
    }

    #[test]
    fn replace_swaps_the_snapshot_and_keeps_old_holders_intact() {
        let settings = Current::default();
        let before = settings.current();
        settings.replace(Settings { default_timeout_ms: 1234, ..Settings::default() });
        assert_eq!(settings.current().default_timeout_ms, 1234);
        assert_eq!(before.default_timeout_ms, 500);
        settings.replace(Settings::default());
    }
}
