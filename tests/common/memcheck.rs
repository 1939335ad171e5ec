//! Reading valgrind memcheck's report: which records are leaks or invalid
//! accesses, and which of them name this module (Asterisk's own records do
//! not count against it).

/// The module's object name, as it appears in valgrind's stack frames.
const MODULE_OBJECT: &str = "res_stasis_broadcast_rs";

/// valgrind's report as records: each starts at a line that is not a stack
/// frame and runs to the next blank line.
pub fn records(report: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in report.lines() {
        // "==123== text": keep what follows the pid prefix.
        let text = line.split_once("== ").map_or("", |(_, rest)| rest);
        if text.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        current.push_str(text);
        current.push('\n');
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

pub fn is_leak(record: &str) -> bool {
    let first = record.lines().next().unwrap_or_default();
    first.contains("are definitely lost") || first.contains("are indirectly lost")
}

pub fn is_invalid_access(record: &str) -> bool {
    let first = record.lines().next().unwrap_or_default();
    first.starts_with("Invalid read")
        || first.starts_with("Invalid write")
        || first.starts_with("Invalid free")
        || first.starts_with("Jump to the invalid address")
}

pub fn names_module(record: &str) -> bool {
    record.contains(MODULE_OBJECT)
}

/// What a finished report says about this module.
pub struct Verdict {
    /// Leak records in the whole report (Asterisk's included).
    pub all_leaks: usize,
    /// Leak records whose stack names the module.
    pub module_leaks: Vec<String>,
    /// Invalid reads, writes, frees or jumps whose stack names the module.
    pub module_invalid: Vec<String>,
    /// Invalid accesses anywhere (said, not asserted: they may be Asterisk's).
    pub all_invalid: usize,
}

impl Verdict {
    pub fn of(report: &str) -> Verdict {
        assert!(report.contains("HEAP SUMMARY"), "valgrind's report is incomplete:\n{report}");
        let records = records(report);
        Verdict {
            all_leaks: records.iter().filter(|r| is_leak(r)).count(),
            module_leaks: records.iter().filter(|r| is_leak(r) && names_module(r)).cloned().collect(),
            module_invalid: records.iter().filter(|r| is_invalid_access(r) && names_module(r)).cloned().collect(),
            all_invalid: records.iter().filter(|r| is_invalid_access(r)).count(),
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "{} leak record(s) in all, {} naming the module; {} invalid access(es) in all, {} naming the module",
            self.all_leaks,
            self.module_leaks.len(),
            self.all_invalid,
            self.module_invalid.len()
        )
    }

    /// Fails with the offending records if any names the module.
    pub fn assert_clean(&self) {
        assert!(
            self.module_leaks.is_empty() && self.module_invalid.is_empty(),
            "valgrind found the module's memory left behind or misused:\n{}\n{}",
            self.module_leaks.join("\n"),
            self.module_invalid.join("\n")
        );
    }
}
