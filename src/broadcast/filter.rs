//! The `app_filter` argument of StasisBroadcast(): a regular expression that
//! selects which ARI applications are offered a call.
//!
//! Matching is an unanchored search of the application name, as POSIX
//! `regexec` does. The `regex` crate matches in linear time, so unlike the C
//! reference no pattern needs to be refused for fear of backtracking: only
//! the pattern length and the compiled size are capped.
//!
//! POSIX ERE vs this syntax, for users porting filters:
//! - same: `^ $ . [...] [^...] * + ? {m,n} | ( )` and `[[:alpha:]]`-style
//!   classes (`alnum alpha blank cntrl digit graph lower print punct space
//!   upper xdigit`, ASCII only);
//! - `\d \w \s \b` are escapes here (`\d` is a digit, glibc reads it as `d`);
//!   a backslash inside `[...]` escapes here, but is a literal in POSIX;
//! - backreferences (`\1`) are rejected; `[[.x.]]`, `[[=x=]]` and unknown
//!   `[[:name:]]` are not POSIX elements here but nested sets of characters;
//! - `.` and negated sets match one Unicode character, not one byte.
//!
//! The crate's per-thread cache pool keys on a destructor-free thread-local
//! `usize`, so using a filter does not pin the module's shared object. Its
//! capacity is set here: left to its default, the engine reads it once into
//! a lazily allocated static, which outlives `module unload` (a leak valgrind
//! sees). So filters are built with `regex-automata`'s builder, configured
//! as `regex::RegexBuilder` configures it, plus that one setting.

use std::fmt;

use regex_automata::meta::{self, Regex};
use regex_automata::util::syntax;
use regex_automata::MatchKind;

/// Longest pattern accepted, in bytes (the C reference's cap).
pub const MAX_PATTERN_LEN: usize = 256;

/// Cap on the compiled program. Compiling runs on the channel's PBX thread,
/// once per call: 1 MiB keeps that to a few milliseconds while leaving room
/// for real filters (`[^,]{1,255}` needs ~260 KiB, `.{1,200}` ~200 KiB).
/// What it refuses is large counted repeats of Unicode classes
/// (`\w{1,30}` needs over 1 MiB); ASCII classes (`[[:alnum:]_]`) do the job.
const COMPILED_SIZE_LIMIT: usize = 1 << 20;

/// Cap on the lazy DFA's cache, per concurrent match. Application names are
/// short, so few DFA states are ever built; if the cache cannot hold even
/// those, the crate falls back to its NFA simulation (still linear), so this
/// limit never makes a pattern fail to compile.
const DFA_CACHE_LIMIT: usize = 512 << 10;

/// Matching caches kept for reuse per filter: one call matches a few names on
/// one thread at a time, so one suffices (more threads get a fresh cache).
const POOL_CAPACITY: usize = 1;

/// Why a filter pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterError {
    /// Longer than [`MAX_PATTERN_LEN`] bytes.
    TooLong { len: usize, max: usize },
    /// Not a valid pattern; the parser's message, on one line.
    Invalid(String),
    /// Valid, but the compiled form exceeds the size cap.
    TooBig,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterError::TooLong { len, max } => {
                write!(f, "pattern is {len} bytes long (max {max})")
            }
            FilterError::Invalid(message) => {
                write!(f, "not a valid regular expression: {message}")
            }
            FilterError::TooBig => write!(
                f,
                "pattern compiles to more than {} KiB \
                 (large repeats of Unicode classes such as \\w; use [[:alnum:]_] instead)",
                COMPILED_SIZE_LIMIT >> 10
            ),
        }
    }
}

impl std::error::Error for FilterError {}

/// A compiled application-name filter.
#[derive(Debug, Clone)]
pub struct AppFilter {
    regex: Regex,
    pattern: String,
}

impl AppFilter {
    /// The filter for a StasisBroadcast() `app_filter` argument: `None` when
    /// the argument is empty (every application is offered the call).
    pub fn from_arg(arg: &str) -> Result<Option<AppFilter>, FilterError> {
        if arg.is_empty() {
            return Ok(None);
        }
        AppFilter::compile(arg).map(Some)
    }

    /// Compiles `pattern`. An empty pattern compiles to a filter matching
    /// every name; callers treat "" as "no filter" via [`AppFilter::from_arg`].
    pub fn compile(pattern: &str) -> Result<AppFilter, FilterError> {
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(FilterError::TooLong {
                len: pattern.len(),
                max: MAX_PATTERN_LEN,
            });
        }
        // What regex::RegexBuilder::build does for a `Regex` (leftmost-first,
        // UTF-8), with the caps above and the pool capacity.
        let config = meta::Config::new()
            .match_kind(MatchKind::LeftmostFirst)
            .utf8_empty(true)
            .nfa_size_limit(Some(COMPILED_SIZE_LIMIT))
            .hybrid_cache_capacity(DFA_CACHE_LIMIT)
            .pool_capacity(POOL_CAPACITY);
        meta::Builder::new()
            .configure(config)
            .syntax(syntax::Config::new().utf8(true))
            .build(pattern)
            .map(|regex| AppFilter { regex, pattern: pattern.to_owned() })
            .map_err(|err| {
                if err.size_limit().is_some() {
                    FilterError::TooBig
                } else if let Some(syntax) = err.syntax_error() {
                    FilterError::Invalid(one_line_message(&syntax.to_string()))
                } else {
                    FilterError::Invalid(one_line_message(&err.to_string()))
                }
            })
    }

    /// True when the pattern matches anywhere in `app_name`.
    pub fn matches(&self, app_name: &str) -> bool {
        self.regex.is_match(app_name)
    }

    /// The pattern as given.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The names that match, in their original order.
    pub fn select<S: AsRef<str>>(&self, names: Vec<S>) -> Vec<S> {
        names
            .into_iter()
            .filter(|name| self.matches(name.as_ref()))
            .collect()
    }
}

/// Turns the regex crate's multi-line syntax error (a header, the pattern,
/// a line of carets, then `error: ...`) into "what (column N)", because log
/// lines must be single lines.
fn one_line_message(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let what = lines
        .iter()
        .find_map(|line| line.trim_start().strip_prefix("error:"))
        .map(str::trim);
    let Some(what) = what else {
        let joined: Vec<&str> = lines
            .iter()
            .map(|line| line.trim())
            .filter(|line| !line.is_empty())
            .collect();
        return joined.join(" ");
    };
    // The pattern and caret lines share an indent; the caret's column within
    // the pattern is its offset from that indent.
    let caret_column = lines.windows(2).find_map(|pair| {
        let (pattern_line, caret_line) = (pair[0], pair[1]);
        let marks = caret_line.trim();
        if marks.is_empty() || !marks.chars().all(|c| c == '^') {
            return None;
        }
        let indent = pattern_line.len() - pattern_line.trim_start().len();
        let caret_at = caret_line.find('^')?;
        caret_at.checked_sub(indent).map(|offset| offset + 1)
    });
    match caret_column {
        Some(column) => format!("{what} (column {column})"),
        None => what.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(pattern: &str) -> AppFilter {
        match AppFilter::compile(pattern) {
            Ok(filter) => filter,
            Err(err) => panic!("{pattern:?} refused: {err}"),
        }
    }

    #[test]
    fn search_is_unanchored() {
        let f = filter("ivr");
        assert!(f.matches("ivr"));
        assert!(f.matches("main-ivr-2"));
        assert!(!f.matches("IVR"));
        assert!(!f.matches("sales"));
    }

    #[test]
    fn anchors_anchor() {
        let f = filter("^ivr-.*");
        assert!(f.matches("ivr-sales"));
        assert!(!f.matches("x-ivr-sales"));
        let f = filter("-queue$");
        assert!(f.matches("sales-queue"));
        assert!(!f.matches("sales-queue-2"));
        let f = filter("^(sales|support)$");
        assert!(f.matches("support"));
        assert!(!f.matches("supports"));
    }

    #[test]
    fn posix_bracket_classes_work() {
        let f = filter("^[[:alpha:]]+$");
        assert!(f.matches("Sales"));
        assert!(!f.matches("sales1"));
        let f = filter("^app[[:digit:]]{2}$");
        assert!(f.matches("app42"));
        assert!(!f.matches("app4x"));
        let f = filter("^[[:alnum:]_-]+$");
        assert!(f.matches("ivr_main-2"));
        assert!(!f.matches("ivr main"));
        let f = filter("[[:upper:]]");
        assert!(f.matches("aBc"));
        assert!(!f.matches("abc"));
        let f = filter("^[[:^space:]]+$");
        assert!(f.matches("no-space"));
        assert!(!f.matches("a space"));
    }

    #[test]
    fn patterns_the_reference_refuses_by_heuristic_are_accepted() {
        let f = filter("(a)+(b)+(c)+(d)+");
        assert!(f.matches("xaabbcdd"));
        assert!(!f.matches("abd"));
        let nested = format!("{}a{}", "(".repeat(11), ")".repeat(11));
        assert!(filter(&nested).matches("a"));
        let f = filter("^x{1,200}$");
        assert!(f.matches(&"x".repeat(200)));
        assert!(!f.matches(&"x".repeat(201)));
        let f = filter("^(a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p)+$");
        assert!(f.matches("abcp"));
        assert!(filter("^[^,]{1,255}$").matches("anything"));
    }

    #[test]
    fn length_cap_is_256_bytes() {
        let at_cap = "a".repeat(MAX_PATTERN_LEN);
        assert!(AppFilter::compile(&at_cap).is_ok());
        let over = "a".repeat(MAX_PATTERN_LEN + 1);
        assert_eq!(
            AppFilter::compile(&over).err(),
            Some(FilterError::TooLong { len: 257, max: 256 })
        );
        assert_eq!(
            FilterError::TooLong { len: 257, max: 256 }.to_string(),
            "pattern is 257 bytes long (max 256)"
        );
        // Bytes, not characters: 129 two-byte characters are 258 bytes.
        let wide = "é".repeat(129);
        assert!(matches!(
            AppFilter::compile(&wide),
            Err(FilterError::TooLong { len: 258, .. })
        ));
    }

    #[test]
    fn invalid_pattern_error_is_one_line() {
        for (pattern, expected) in [
            ("(abc", "unclosed group (column 1)"),
            ("ab)", "unopened group (column 3)"),
            ("x\\1", "backreferences are not supported (column 2)"),
            ("*a", "repetition operator missing expression (column 1)"),
        ] {
            let err = match AppFilter::compile(pattern) {
                Err(err) => err,
                Ok(_) => panic!("{pattern:?} accepted"),
            };
            assert_eq!(err, FilterError::Invalid(expected.to_string()));
            let line = err.to_string();
            assert!(!line.contains('\n'), "{line:?}");
            assert_eq!(line, format!("not a valid regular expression: {expected}"));
        }
    }

    #[test]
    fn one_line_message_falls_back_to_joining_lines() {
        assert_eq!(
            one_line_message("first\n  second \n\nthird"),
            "first second third"
        );
        assert_eq!(one_line_message("error: plain"), "plain");
    }

    #[test]
    fn oversized_program_is_too_big_not_invalid() {
        let err = AppFilter::compile("\\w{1,200}").err();
        assert_eq!(err, Some(FilterError::TooBig));
        assert_eq!(
            FilterError::TooBig.to_string(),
            "pattern compiles to more than 1024 KiB (large repeats of Unicode classes \
             such as \\w; use [[:alnum:]_] instead)"
        );
    }

    #[test]
    fn pathological_backtracking_patterns_return() {
        let subject = "a".repeat(50);
        assert!(!filter("(a*)*b").matches(&subject));
        assert!(!filter("(a|aa)+$b").matches(&subject));
        assert!(!filter("^(a+)+b").matches(&subject));
        assert!(filter("(a*)*").matches(&subject));
    }

    #[test]
    fn empty_argument_means_no_filter() {
        assert!(matches!(AppFilter::from_arg(""), Ok(None)));
        match AppFilter::from_arg("^ivr") {
            Ok(Some(f)) => assert_eq!(f.pattern(), "^ivr"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            AppFilter::from_arg("("),
            Err(FilterError::Invalid(_))
        ));
    }

    #[test]
    fn select_keeps_matching_names_in_order() {
        let f = filter("^ivr-");
        let names = vec!["ivr-b", "sales", "ivr-a", "x-ivr-c"];
        assert_eq!(f.select(names), vec!["ivr-b", "ivr-a"]);
        let owned = vec!["ivr-1".to_string(), "other".to_string()];
        assert_eq!(f.select(owned), vec!["ivr-1".to_string()]);
    }
}
