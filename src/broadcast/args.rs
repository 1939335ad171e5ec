//! Parsing of the StasisBroadcast() dialplan arguments:
//! `[timeout[,app_filter[,args[,notify_claimed]]]]`.
//!
//! Everything here is pure: bad values come back as [`ArgWarning`]s for the
//! caller to log with the channel name, and parsing always yields usable
//! [`AppArgs`], as the C reference does.

use std::borrow::Cow;
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
    let bytes = text.as_bytes();
    // C isspace() in the C locale; Rust's is_ascii_whitespace lacks '\v'.
    let start = bytes.iter().position(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r'));
    let rest = &bytes[start.unwrap_or(bytes.len())..];
    let (negative, rest) = match rest.first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    let digits = &rest[..rest.iter().position(|byte| !byte.is_ascii_digit()).unwrap_or(rest.len())];
    if digits.is_empty() {
        return None;
    }
    // Nine digits cannot overflow: no check per digit.
    if digits.len() <= 9 {
        let magnitude = digits.iter().fold(0i32, |value, digit| value * 10 + i32::from(digit - b'0'));
        return Some(if negative { -magnitude } else { magnitude });
    }
    let mut magnitude: i64 = 0;
    for &digit in digits {
        magnitude = magnitude * 10 + i64::from(digit - b'0');
        if magnitude > i64::from(i32::MAX) + 1 {
            return None;
        }
    }
    let value = if negative { -magnitude } else { magnitude };
    i32::try_from(value).ok()
}

/// The colon-separated Stasis arguments, split as `strsep(":")` splits
/// them: empty fields are kept ("a::b" is three arguments), and an empty
/// string is no arguments. Kept as the text they came in (borrowed from the
/// application data when nothing needed unquoting) and split when the
/// winner's Stasis session starts: a call nobody claims never splits them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StasisArgs<'a> {
    raw: Cow<'a, str>,
    /// How many of them are passed: at most [`MAX_STASIS_ARGS`].
    count: usize,
    /// How much of `raw` they take (all of it unless some were dropped).
    kept_len: usize,
}

impl StasisArgs<'_> {
    /// The arguments passed, in order, as text (what the tests read).
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = &str> + Clone {
        self.raw.split(':').take(self.count)
    }

    /// The arguments passed, in order, as bytes (split without decoding
    /// characters: ':' is ASCII), as they go to stasis_app_exec.
    pub fn iter_bytes(&self) -> impl Iterator<Item = &[u8]> + Clone {
        self.raw.as_bytes().split(|&byte| byte == b':').take(self.count)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes they take as C strings one after another, each with its NUL.
    pub fn c_size(&self) -> usize {
        if self.count == 0 { 0 } else { self.kept_len + 1 }
    }
}

/// Splits the Stasis arguments (see [`StasisArgs`]); returns how many were
/// dropped beyond [`MAX_STASIS_ARGS`].
pub fn split_stasis_args(raw: Cow<'_, str>) -> (StasisArgs<'_>, usize) {
    let given = if raw.is_empty() { 0 } else { raw.bytes().filter(|&byte| byte == b':').count() + 1 };
    let count = given.min(MAX_STASIS_ARGS);
    let kept_len = if count == given {
        raw.len()
    } else {
        // Up to the separator after the last one kept.
        raw.match_indices(':').nth(count - 1).map_or(raw.len(), |(at, _)| at)
    };
    (StasisArgs { raw, count, kept_len }, given - count)
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
///
/// Fields come one at a time, borrowed from `data` unless a quote or a
/// backslash had to be removed: the usual dialplan costs no allocation.
pub fn separate_app_args(data: &str, max_fields: usize) -> AppArgFields<'_> {
    AppArgFields { data, at: 0, left: max_fields, paren: 0, bracket: 0, quoted: false, ended_on_separator: false }
}

/// The [`APP_FIELDS`] fields of `data` ("" for those absent) in one pass,
/// when it has no quote, backslash, paren or bracket: then every comma up to
/// the last field separates, as [`separate_app_args`] would split it.
fn plain_fields(data: &str) -> Option<[&str; APP_FIELDS]> {
    let mut fields = [""; APP_FIELDS];
    let mut field = 0;
    let mut start = 0;
    for (at, byte) in data.bytes().enumerate() {
        match byte {
            b'"' | b'\\' | b'(' | b'[' => return None,
            b',' if field < APP_FIELDS - 1 => {
                fields[field] = &data[start..at];
                field += 1;
                start = at + 1;
            }
            _ => {}
        }
    }
    fields[field] = &data[start..];
    Some(fields)
}

/// The fields of [`separate_app_args`].
pub struct AppArgFields<'a> {
    data: &'a str,
    /// Where the next field starts.
    at: usize,
    /// Fields that may still come.
    left: usize,
    paren: u32,
    bracket: u32,
    quoted: bool,
    ended_on_separator: bool,
}

impl<'a> Iterator for AppArgFields<'a> {
    type Item = Cow<'a, str>;

    fn next(&mut self) -> Option<Cow<'a, str>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let rest = &self.data[self.at..];
        if rest.is_empty() {
            self.left = 0;
            // Data ending in a separator has one more, empty, field.
            return std::mem::take(&mut self.ended_on_separator).then_some(Cow::Borrowed(""));
        }
        if self.left == 0 {
            self.at = self.data.len();
            return Some(Cow::Borrowed(rest));
        }
        let bytes = rest.as_bytes();
        // The field with quotes and escapes removed, once one has been met.
        let mut unquoted: Option<Vec<u8>> = None;
        let mut end = bytes.len();
        self.ended_on_separator = false;
        let mut index = 0;
        // Every byte that matters here is ASCII, so walking bytes never
        // splits a character: a multi-byte character is copied byte by byte.
        while index < bytes.len() {
            let byte = bytes[index];
            match byte {
                b'(' => self.paren += 1,
                b')' => self.paren = self.paren.saturating_sub(1),
                b'[' => self.bracket += 1,
                b']' => self.bracket = self.bracket.saturating_sub(1),
                b'"' | b'\\' => {
                    let kept = unquoted.get_or_insert_with(|| bytes[..index].to_vec());
                    if byte == b'"' {
                        self.quoted = !self.quoted;
                    } else if let Some(&escaped) = bytes.get(index + 1) {
                        kept.push(escaped);
                        index += 1;
                    }
                    index += 1;
                    continue;
                }
                b',' if self.paren == 0 && self.bracket == 0 && !self.quoted => {
                    self.ended_on_separator = true;
                    end = index;
                    break;
                }
                _ => {}
            }
            if let Some(kept) = &mut unquoted {
                kept.push(byte);
            }
            index += 1;
        }
        self.at += if self.ended_on_separator { end + 1 } else { end };
        Some(match unquoted {
            // Only ASCII bytes were left out of valid UTF-8: still valid.
            Some(kept) => Cow::Owned(String::from_utf8(kept).unwrap_or_else(|bad| String::from_utf8_lossy(bad.as_bytes()).into_owned())),
            None => Cow::Borrowed(&rest[..end]),
        })
    }
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

/// The parsed StasisBroadcast() arguments, borrowing from the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppArgs<'a> {
    pub timeout_ms: u32,
    /// The filter pattern, not yet compiled; `None` when empty or absent.
    pub filter: Option<Cow<'a, str>>,
    pub stasis_args: StasisArgs<'a>,
    pub notify_claimed: bool,
}

/// Parses the application data. An empty field counts as absent; a given
/// `notify_claimed` is `is_true` of it (so "no" turns a true default off).
pub fn parse_app_args<'a>(data: &'a str, defaults: &Defaults) -> (AppArgs<'a>, Vec<ArgWarning>) {
    let mut warnings = Vec::new();
    let (timeout, filter, stasis_args, notify_claimed) = match plain_fields(data) {
        Some([timeout, filter, stasis_args, notify_claimed]) => (
            Cow::Borrowed(timeout),
            Cow::Borrowed(filter),
            Cow::Borrowed(stasis_args),
            Cow::Borrowed(notify_claimed),
        ),
        None => {
            let mut fields = separate_app_args(data, APP_FIELDS);
            let mut field = || fields.next().unwrap_or(Cow::Borrowed(""));
            (field(), field(), field(), field())
        }
    };

    let timeout_ms = match parse_timeout(&timeout, defaults.timeout_ms, defaults.max_timeout_ms) {
        Ok(ms) => ms,
        Err(err) => {
            let ms = err.default_ms;
            warnings.push(ArgWarning::from(err));
            ms
        }
    };

    let filter = Some(filter).filter(|pattern| !pattern.is_empty());

    let (stasis_args, dropped) = split_stasis_args(stasis_args);
    if dropped > 0 {
        warnings.push(ArgWarning::TooManyArgs { given: stasis_args.len() + dropped, kept: stasis_args.len() });
    }

    let notify_claimed = match &*notify_claimed {
        "" => defaults.notify_claimed,
        given => is_true(given),
    };

    let args = AppArgs { timeout_ms, filter, stasis_args, notify_claimed };
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

    fn sep(data: &str, max_fields: usize) -> Vec<String> {
        separate_app_args(data, max_fields).map(Cow::into_owned).collect()
    }

    fn split(raw: &str) -> (Vec<String>, usize) {
        let (args, dropped) = split_stasis_args(Cow::Borrowed(raw));
        (args.iter().map(str::to_owned).collect(), dropped)
    }

    fn stasis(args: &AppArgs<'_>) -> Vec<String> {
        args.stasis_args.iter().map(str::to_owned).collect()
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
        assert_eq!(split(""), (vec![], 0));
        assert_eq!(split("sales"), (strings(&["sales"]), 0));
        assert_eq!(
            split("sales:priority-high"),
            (strings(&["sales", "priority-high"]), 0)
        );
        assert_eq!(split("a::b"), (strings(&["a", "", "b"]), 0));
        assert_eq!(split(":"), (strings(&["", ""]), 0));
        assert_eq!(split("a:"), (strings(&["a", ""]), 0));
    }

    #[test]
    fn stasis_args_as_bytes_are_the_arguments() {
        for raw in ["", "a", "a::b", ":", "x,y:z", "é:ü"] {
            let (args, _) = split_stasis_args(Cow::Borrowed(raw));
            let bytes: Vec<&[u8]> = args.iter_bytes().collect();
            let text: Vec<&[u8]> = args.iter().map(str::as_bytes).collect();
            assert_eq!(bytes, text, "{raw:?}");
        }
    }

    #[test]
    fn stasis_args_c_size_counts_each_kept_argument_and_its_nul() {
        let size = |raw: &str| split_stasis_args(Cow::Borrowed(raw)).0.c_size();
        for raw in ["", "a", "a::b", ":", "sales:priority-high"] {
            let (args, _) = split_stasis_args(Cow::Borrowed(raw));
            assert_eq!(size(raw), args.iter().map(|arg| arg.len() + 1).sum::<usize>(), "{raw:?}");
        }
        let many: Vec<String> = (0..130).map(|i| format!("a{i}")).collect();
        let (args, _) = split_stasis_args(Cow::Owned(many.join(":")));
        assert_eq!(args.c_size(), many[..128].iter().map(|arg| arg.len() + 1).sum::<usize>());
    }

    #[test]
    fn stasis_args_are_capped_at_128() {
        let raw: Vec<String> = (0..130).map(|i| format!("a{i}")).collect();
        let (kept, dropped) = split(&raw.join(":"));
        assert_eq!(kept.len(), 128);
        assert_eq!(dropped, 2);
        assert_eq!(kept.first().map(String::as_str), Some("a0"));
        assert_eq!(kept.last().map(String::as_str), Some("a127"));

        let exactly: Vec<String> = (0..128).map(|i| i.to_string()).collect();
        assert_eq!(split(&exactly.join(":")).1, 0);
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
        assert_eq!(sep("", 4), Vec::<String>::new());
        assert_eq!(sep("a", 4), strings(&["a"]));
        assert_eq!(sep("a,b", 4), strings(&["a", "b"]));
        assert_eq!(sep("a,", 4), strings(&["a", ""]));
        assert_eq!(sep(",,,", 4), strings(&["", "", "", ""]));
        assert_eq!(sep(",", 4), strings(&["", ""]));
        assert_eq!(sep("a,b", 0), Vec::<String>::new());
        assert_eq!(sep("a,b,c", 1), strings(&["a,b,c"]));
    }

    #[test]
    fn the_plain_data_shortcut_splits_as_the_full_scan_does() {
        // The one-pass split of parse_app_args agrees with the full scan,
        // absent fields as "".
        for data in ["", "a", ",", "a,", "5000,,won", "1,2,3,4,5", ",,,,", "a)b],c", "é,ß,"] {
            let mut expected = sep(data, APP_FIELDS);
            expected.resize(APP_FIELDS, String::new());
            assert_eq!(plain_fields(data).map(|fields| fields.map(str::to_owned).to_vec()), Some(expected), "{data:?}");
        }
        assert_eq!(plain_fields("1,\"a,b\""), None);
        assert_eq!(plain_fields("1,^a[,]b"), None);
    }

    #[test]
    fn separate_leaves_the_rest_in_the_last_field() {
        assert_eq!(
            sep("1,2,3,4,5", 4),
            strings(&["1", "2", "3", "4,5"])
        );
        // The last field is not unquoted or unescaped.
        assert_eq!(
            sep("1,2,3,\"y\\es\"", 4),
            strings(&["1", "2", "3", "\"y\\es\""])
        );
        assert_eq!(
            sep("1,2,3,", 4),
            strings(&["1", "2", "3", ""])
        );
    }

    #[test]
    fn separate_honours_quotes_escapes_and_nesting() {
        assert_eq!(sep("\"a,b\",c", 4), strings(&["a,b", "c"]));
        assert_eq!(sep("a\\,b,c", 4), strings(&["a,b", "c"]));
        assert_eq!(sep("a\\\\,b", 4), strings(&["a\\", "b"]));
        assert_eq!(sep("a\\", 4), strings(&["a"]));
        assert_eq!(sep("f(x,y),z", 4), strings(&["f(x,y)", "z"]));
        assert_eq!(
            sep("^a[,]b$,z", 4),
            strings(&["^a[,]b$", "z"])
        );
        // An escaped paren does not count towards nesting.
        assert_eq!(sep("\\(,z", 4), strings(&["(", "z"]));
        // Unbalanced closers are ignored, as in Asterisk.
        assert_eq!(sep("a),b", 4), strings(&["a)", "b"]));
        // Non-ASCII text passes through, escaped or not.
        assert_eq!(sep("é\\ü,ß", 4), strings(&["éü", "ß"]));
    }

    #[test]
    fn full_data_string() {
        let (args, warnings) =
            parse_app_args("2000,^ivr-.*,sales:priority-high,yes", &Defaults::default());
        assert_eq!(args.timeout_ms, 2000);
        assert_eq!(args.filter.as_deref(), Some("^ivr-.*"));
        assert_eq!(stasis(&args), strings(&["sales", "priority-high"]));
        assert!(args.notify_claimed);
        // Nothing needed unquoting: every field borrows from the data.
        assert!(matches!(args.filter, Some(Cow::Borrowed(_))));
        assert!(warnings.is_empty());
    }

    #[test]
    fn empty_data_and_empty_fields_give_defaults() {
        for data in ["", ",", ",,", ",,,", ",,,,"] {
            let (args, warnings) = parse_app_args(data, &Defaults::default());
            assert_eq!(args.timeout_ms, 500, "{data:?}");
            assert_eq!(args.filter, None, "{data:?}");
            assert!(args.stasis_args.is_empty(), "{data:?}");
            assert!(!args.notify_claimed, "{data:?}");
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
        assert_eq!(stasis(&args), strings(&["x,y", "z"]));
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
        assert_eq!(stasis(&args).last().map(String::as_str), Some("127"));
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
