//! Parsing of the StasisBroadcast() dialplan arguments:
//! `[timeout[,app_filter[,args[,notify_claimed]]]]`.
//!
//! Everything here is pure: bad values come back as [`ArgWarning`]s for the
//! caller to log with the channel name, and parsing always yields usable
//! [`AppArgs`], as the C reference does.

use std::fmt;

/// Claim timeout used when none (or a bad one) is given, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u32 = 500;
/// Largest accepted claim timeout, in milliseconds.
pub const MAX_TIMEOUT_MS: u32 = 60000;
/// Most arguments handed to the winning application's Stasis session.
pub const MAX_STASIS_ARGS: usize = 128;

/// Number of comma-separated fields StasisBroadcast() declares.
const APP_FIELDS: usize = 4;

/// A timeout argument that is not an integer within `0..=max_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeoutError {
    pub raw: String,
    pub default_ms: u32,
    pub max_ms: u32,
}

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid timeout value '{}' (must be 0-{}ms), using default {}ms",
            self.raw, self.max_ms, self.default_ms
        )
    }
}

impl std::error::Error for TimeoutError {}

/// Parses a timeout in milliseconds the way the reference's `sscanf("%d")`
/// reads it: leading whitespace skipped, optional sign, decimal digits, and
/// anything after the digits ignored ("250ms" is 250). An empty string means
/// `default_ms`. One deliberate difference: glibc truncates values beyond
/// `int` to 32 bits (so "4294967296" would read as 0); here they are invalid.
pub fn parse_timeout(raw: &str, default_ms: u32, max_ms: u32) -> Result<u32, TimeoutError> {
    if raw.is_empty() {
        return Ok(default_ms);
    }
    let invalid = || TimeoutError {
        raw: raw.to_string(),
        default_ms,
        max_ms,
    };
    let value = scan_decimal_int(raw).ok_or_else(invalid)?;
    match u32::try_from(value) {
        Ok(ms) if ms <= max_ms => Ok(ms),
        _ => Err(invalid()),
    }
}

/// C `sscanf(s, "%d")`: `None` where it would not convert (or overflow `int`).
fn scan_decimal_int(text: &str) -> Option<i32> {
    // C isspace() in the C locale; Rust's is_ascii_whitespace lacks '\v'.
    let rest = text.trim_start_matches([' ', '\t', '\n', '\u{0B}', '\u{0C}', '\r']);
    let (negative, rest) = match rest.as_bytes().first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    let digits_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits_len == 0 {
        return None;
    }
    let mut magnitude: i64 = 0;
    for digit in rest.bytes().take(digits_len) {
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(i64::from(digit - b'0'))?;
        if magnitude > i64::from(i32::MAX) + 1 {
            return None;
        }
    }
    let value = if negative { -magnitude } else { magnitude };
    i32::try_from(value).ok()
}

/// Splits the colon-separated Stasis arguments as `strsep(":")` does: empty
/// fields are kept ("a::b" is three arguments), and an empty string is no
/// arguments. Returns at most [`MAX_STASIS_ARGS`], and how many were dropped.
pub fn split_stasis_args(raw: &str) -> (Vec<String>, usize) {
    if raw.is_empty() {
        return (Vec::new(), 0);
    }
    let mut kept = Vec::new();
    let mut dropped = 0;
    for arg in raw.split(':') {
        if kept.len() < MAX_STASIS_ARGS {
            kept.push(arg.to_string());
        } else {
            dropped += 1;
        }
    }
    (kept, dropped)
}

/// Asterisk's `ast_true`: "yes", "true", "y", "t", "1" or "on", in any
/// ASCII case. Like `ast_true`, surrounding whitespace is not trimmed
/// (" yes" is false), so a dialplan behaves as it does with the reference.
pub fn is_true(raw: &str) -> bool {
    ["yes", "true", "y", "t", "1", "on"]
        .iter()
        .any(|word| raw.eq_ignore_ascii_case(word))
}

/// Splits dialplan application data as Asterisk's `AST_STANDARD_APP_ARGS`
/// (`__ast_app_separate_args` with delimiter ',' and quote removal) does:
/// - a comma separates fields unless inside `"..."`, `(...)` or `[...]`
///   (so `[,]` in a filter stays one field); quote, paren and bracket state
///   carries over from one field to the next, as in Asterisk;
/// - double quotes are removed; a backslash is removed and the character
///   after it is taken literally;
/// - with `max_fields` declared, the last field is the raw rest of the data
///   after the previous separator: further commas, quotes and backslashes
///   are kept as they are (with 4 fields, `1,,,yes,x` gives `yes,x`);
/// - data ending in a separator has one more, empty, field.
pub fn separate_app_args(data: &str, max_fields: usize) -> Vec<String> {
    let mut fields = Vec::new();
    if max_fields == 0 || data.is_empty() {
        return fields;
    }
    let (mut paren, mut bracket, mut quoted) = (0u32, 0u32, false);
    let mut chars = data.char_indices().peekable();
    let mut ended_on_separator = false;
    while chars.peek().is_some() && fields.len() < max_fields - 1 {
        let mut field = String::new();
        ended_on_separator = false;
        while let Some((_, c)) = chars.next() {
            match c {
                '(' => paren += 1,
                ')' => paren = paren.saturating_sub(1),
                '[' => bracket += 1,
                ']' => bracket = bracket.saturating_sub(1),
                '"' => {
                    quoted = !quoted;
                    continue;
                }
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        field.push(escaped);
                    }
                    continue;
                }
                ',' if paren == 0 && bracket == 0 && !quoted => {
                    ended_on_separator = true;
                    break;
                }
                _ => {}
            }
            field.push(c);
        }
        fields.push(field);
    }
    match chars.peek() {
        Some(&(rest_at, _)) => fields.push(data[rest_at..].to_string()),
        None if ended_on_separator => fields.push(String::new()),
        None => {}
    }
    fields
}

/// What the caller needs when an argument is given but not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgWarning {
    /// The timeout was not an integer in `0..=max_ms`; `default_ms` is used.
    InvalidTimeout {
        raw: String,
        default_ms: u32,
        max_ms: u32,
    },
    /// More Stasis arguments than [`MAX_STASIS_ARGS`]; only `kept` are passed.
    TooManyArgs { given: usize, kept: usize },
}

impl From<TimeoutError> for ArgWarning {
    fn from(err: TimeoutError) -> Self {
        ArgWarning::InvalidTimeout {
            raw: err.raw,
            default_ms: err.default_ms,
            max_ms: err.max_ms,
        }
    }
}

impl fmt::Display for ArgWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgWarning::InvalidTimeout {
                raw,
                default_ms,
                max_ms,
            } => write!(
                f,
                "invalid timeout value '{raw}' (must be 0-{max_ms}ms), using default {default_ms}ms"
            ),
            ArgWarning::TooManyArgs { given, kept } => write!(
                f,
                "{given} Stasis arguments given, only the first {kept} are passed"
            ),
        }
    }
}

/// Values used where an argument is absent (or, for the timeout, bad).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    pub timeout_ms: u32,
    pub max_timeout_ms: u32,
    pub notify_claimed: bool,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_timeout_ms: MAX_TIMEOUT_MS,
            notify_claimed: false,
        }
    }
}

/// The parsed StasisBroadcast() arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppArgs {
    pub timeout_ms: u32,
    /// The filter pattern, not yet compiled; `None` when empty or absent.
    pub filter: Option<String>,
    pub stasis_args: Vec<String>,
    pub notify_claimed: bool,
}

/// Parses the application data. An empty field counts as absent; a given
/// `notify_claimed` is `is_true` of it (so "no" turns a true default off).
pub fn parse_app_args(data: &str, defaults: &Defaults) -> (AppArgs, Vec<ArgWarning>) {
    let mut warnings = Vec::new();
    let fields = separate_app_args(data, APP_FIELDS);
    let field = |index: usize| fields.get(index).map(String::as_str).unwrap_or("");

    let timeout_ms = match parse_timeout(field(0), defaults.timeout_ms, defaults.max_timeout_ms) {
        Ok(ms) => ms,
        Err(err) => {
            let ms = err.default_ms;
            warnings.push(ArgWarning::from(err));
            ms
        }
    };

    let filter = Some(field(1))
        .filter(|pattern| !pattern.is_empty())
        .map(str::to_string);

    let (stasis_args, dropped) = split_stasis_args(field(2));
    if dropped > 0 {
        warnings.push(ArgWarning::TooManyArgs {
            given: stasis_args.len() + dropped,
            kept: stasis_args.len(),
        });
    }

    let notify_claimed = match field(3) {
        "" => defaults.notify_claimed,
        given => is_true(given),
    };

    let args = AppArgs {
        timeout_ms,
        filter,
        stasis_args,
        notify_claimed,
    };
    (args, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout(raw: &str) -> Result<u32, TimeoutError> {
        parse_timeout(raw, DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS)
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn timeout_reads_like_sscanf_percent_d() {
        assert_eq!(timeout(""), Ok(500));
        assert_eq!(timeout("0"), Ok(0));
        assert_eq!(timeout(" 42"), Ok(42));
        assert_eq!(timeout("\t\n\u{0B}\u{0C}\r 42"), Ok(42));
        assert_eq!(timeout("+7"), Ok(7));
        assert_eq!(timeout("-0"), Ok(0));
        assert_eq!(timeout("250ms"), Ok(250));
        assert_eq!(timeout("0x10"), Ok(0));
        assert_eq!(timeout("007"), Ok(7));
        assert_eq!(timeout("60000"), Ok(60000));
        assert_eq!(timeout("1 2"), Ok(1));
    }

    #[test]
    fn timeout_rejects_what_sscanf_or_the_range_rejects() {
        for raw in [
            "-1",
            "60001",
            "99999999999",
            "2147483648",
            "4294967296",
            "-2147483649",
            "abc",
            " ",
            "+",
            "-",
            "+-5",
            "- 5",
            "ms250",
        ] {
            assert_eq!(
                timeout(raw),
                Err(TimeoutError {
                    raw: raw.to_string(),
                    default_ms: 500,
                    max_ms: 60000
                }),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn timeout_uses_the_given_limits() {
        assert_eq!(parse_timeout("", 1000, 5000), Ok(1000));
        assert_eq!(parse_timeout("5000", 1000, 5000), Ok(5000));
        let err = parse_timeout("5001", 1000, 5000).err();
        assert_eq!(
            err.map(|e| e.to_string()),
            Some("invalid timeout value '5001' (must be 0-5000ms), using default 1000ms".into())
        );
    }

    #[test]
    fn scan_decimal_int_covers_the_int_range() {
        assert_eq!(scan_decimal_int("2147483647"), Some(i32::MAX));
        assert_eq!(scan_decimal_int("-2147483648"), Some(i32::MIN));
        assert_eq!(scan_decimal_int("2147483648"), None);
        assert_eq!(scan_decimal_int(&"9".repeat(40)), None);
        assert_eq!(scan_decimal_int("-12abc"), Some(-12));
    }

    #[test]
    fn stasis_args_split_like_strsep() {
        assert_eq!(split_stasis_args(""), (vec![], 0));
        assert_eq!(split_stasis_args("sales"), (strings(&["sales"]), 0));
        assert_eq!(
            split_stasis_args("sales:priority-high"),
            (strings(&["sales", "priority-high"]), 0)
        );
        assert_eq!(split_stasis_args("a::b"), (strings(&["a", "", "b"]), 0));
        assert_eq!(split_stasis_args(":"), (strings(&["", ""]), 0));
        assert_eq!(split_stasis_args("a:"), (strings(&["a", ""]), 0));
    }

    #[test]
    fn stasis_args_are_capped_at_128() {
        let raw: Vec<String> = (0..130).map(|i| format!("a{i}")).collect();
        let (kept, dropped) = split_stasis_args(&raw.join(":"));
        assert_eq!(kept.len(), 128);
        assert_eq!(dropped, 2);
        assert_eq!(kept.first().map(String::as_str), Some("a0"));
        assert_eq!(kept.last().map(String::as_str), Some("a127"));

        let exactly: Vec<String> = (0..128).map(|i| i.to_string()).collect();
        assert_eq!(split_stasis_args(&exactly.join(":")).1, 0);
    }

    #[test]
    fn truth_values_follow_ast_true() {
        for yes in [
            "yes", "YES", "Yes", "true", "TRUE", "y", "Y", "t", "T", "1", "on", "ON",
        ] {
            assert!(is_true(yes), "{yes:?}");
        }
        for no in [
            "", "no", "false", "0", "off", "2", "yess", "tru", "enabled", " yes", "yes ",
        ] {
            assert!(!is_true(no), "{no:?}");
        }
    }

    #[test]
    fn separate_splits_on_plain_commas() {
        assert_eq!(separate_app_args("", 4), Vec::<String>::new());
        assert_eq!(separate_app_args("a", 4), strings(&["a"]));
        assert_eq!(separate_app_args("a,b", 4), strings(&["a", "b"]));
        assert_eq!(separate_app_args("a,", 4), strings(&["a", ""]));
        assert_eq!(separate_app_args(",,,", 4), strings(&["", "", "", ""]));
        assert_eq!(separate_app_args(",", 4), strings(&["", ""]));
        assert_eq!(separate_app_args("a,b", 0), Vec::<String>::new());
        assert_eq!(separate_app_args("a,b,c", 1), strings(&["a,b,c"]));
    }

    #[test]
    fn separate_leaves_the_rest_in_the_last_field() {
        assert_eq!(
            separate_app_args("1,2,3,4,5", 4),
            strings(&["1", "2", "3", "4,5"])
        );
        // The last field is not unquoted or unescaped.
        assert_eq!(
            separate_app_args("1,2,3,\"y\\es\"", 4),
            strings(&["1", "2", "3", "\"y\\es\""])
        );
        assert_eq!(
            separate_app_args("1,2,3,", 4),
            strings(&["1", "2", "3", ""])
        );
    }

    #[test]
    fn separate_honours_quotes_escapes_and_nesting() {
        assert_eq!(separate_app_args("\"a,b\",c", 4), strings(&["a,b", "c"]));
        assert_eq!(separate_app_args("a\\,b,c", 4), strings(&["a,b", "c"]));
        assert_eq!(separate_app_args("a\\\\,b", 4), strings(&["a\\", "b"]));
        assert_eq!(separate_app_args("a\\", 4), strings(&["a"]));
        assert_eq!(separate_app_args("f(x,y),z", 4), strings(&["f(x,y)", "z"]));
        assert_eq!(
            separate_app_args("^a[,]b$,z", 4),
            strings(&["^a[,]b$", "z"])
        );
        // An escaped paren does not count towards nesting.
        assert_eq!(separate_app_args("\\(,z", 4), strings(&["(", "z"]));
        // Unbalanced closers are ignored, as in Asterisk.
        assert_eq!(separate_app_args("a),b", 4), strings(&["a)", "b"]));
        // Non-ASCII text passes through, escaped or not.
        assert_eq!(separate_app_args("é\\ü,ß", 4), strings(&["éü", "ß"]));
    }

    #[test]
    fn full_data_string() {
        let (args, warnings) =
            parse_app_args("2000,^ivr-.*,sales:priority-high,yes", &Defaults::default());
        assert_eq!(
            args,
            AppArgs {
                timeout_ms: 2000,
                filter: Some("^ivr-.*".into()),
                stasis_args: strings(&["sales", "priority-high"]),
                notify_claimed: true,
            }
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn empty_data_and_empty_fields_give_defaults() {
        let expected = AppArgs {
            timeout_ms: 500,
            filter: None,
            stasis_args: vec![],
            notify_claimed: false,
        };
        for data in ["", ",", ",,", ",,,", ",,,,"] {
            let (args, warnings) = parse_app_args(data, &Defaults::default());
            assert_eq!(args, expected, "{data:?}");
            assert!(warnings.is_empty(), "{data:?}");
        }
    }

    #[test]
    fn defaults_are_used_for_absent_fields() {
        let defaults = Defaults {
            timeout_ms: 1500,
            max_timeout_ms: 3000,
            notify_claimed: true,
        };
        let (args, _) = parse_app_args("", &defaults);
        assert_eq!((args.timeout_ms, args.notify_claimed), (1500, true));
        let (args, _) = parse_app_args(",,,no", &defaults);
        assert!(!args.notify_claimed);
        let (args, warnings) = parse_app_args("4000", &defaults);
        assert_eq!(args.timeout_ms, 1500);
        assert_eq!(
            warnings,
            vec![ArgWarning::InvalidTimeout {
                raw: "4000".into(),
                default_ms: 1500,
                max_ms: 3000
            }]
        );
    }

    #[test]
    fn quoted_fields_lose_their_quotes() {
        let (args, warnings) =
            parse_app_args("\"1000\",\"^(a|b),x$\",\"x,y:z\",on", &Defaults::default());
        assert!(warnings.is_empty());
        assert_eq!(args.timeout_ms, 1000);
        assert_eq!(args.filter.as_deref(), Some("^(a|b),x$"));
        assert_eq!(args.stasis_args, strings(&["x,y", "z"]));
        assert!(args.notify_claimed);
    }

    #[test]
    fn fourth_field_keeps_extra_fields_so_is_not_true() {
        let (args, _) = parse_app_args("100,,,yes,extra", &Defaults::default());
        assert!(!args.notify_claimed);
        let (args, _) = parse_app_args("100,,,\"yes\"", &Defaults::default());
        assert!(!args.notify_claimed);
    }

    #[test]
    fn warnings_carry_the_log_text() {
        let many: Vec<String> = (0..130).map(|i| i.to_string()).collect();
        let data = format!("soon,,{},1", many.join(":"));
        let (args, warnings) = parse_app_args(&data, &Defaults::default());
        assert_eq!(args.timeout_ms, 500);
        assert_eq!(args.stasis_args.len(), 128);
        assert!(args.notify_claimed);
        assert_eq!(
            warnings,
            vec![
                ArgWarning::InvalidTimeout {
                    raw: "soon".into(),
                    default_ms: 500,
                    max_ms: 60000
                },
                ArgWarning::TooManyArgs {
                    given: 130,
                    kept: 128
                },
            ]
        );
        let text: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            vec![
                "invalid timeout value 'soon' (must be 0-60000ms), using default 500ms",
                "130 Stasis arguments given, only the first 128 are passed",
            ]
        );
    }
}
