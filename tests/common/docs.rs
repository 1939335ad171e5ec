//! Reading the module's documentation sources: the sample configuration, the
//! XML documentation and the README, and the decided option set they must
//! all describe. Plain string scanning: the files are ours and regular.

use super::REPO;
use std::path::PathBuf;

/// The options of `stasis_broadcast.conf` `[general]` and their defaults.
pub const OPTIONS: [(&str, &str); 6] = [
    ("default_timeout", "500"),
    ("max_timeout", "60000"),
    ("filter_error", "fail"),
    ("claim_policy", "registered"),
    ("claim_endpoint", "auto"),
    ("notify_claimed_default", "no"),
];

pub const XMLDOC: &str = "xmldocs/res_stasis_broadcast_rs-en_US.xml";
pub const SAMPLE_CONF: &str = "configs/stasis_broadcast.conf.sample";

/// Host path of a file of the repository.
pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(REPO).join(relative)
}

/// Content of a file of the repository.
pub fn repo_file(relative: &str) -> String {
    let path = repo_path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Whitespace runs collapsed to one space, ends trimmed: how text compares
/// once Asterisk has re-wrapped it.
pub fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The text inside the first `<tag>…</tag>` after the first occurrence of
/// `anchor`, whitespace squashed; `None` if either is missing.
pub fn xml_text_after(xml: &str, anchor: &str, tag: &str) -> Option<String> {
    let from = xml.find(anchor)?;
    let rest = &xml[from..];
    let open = format!("<{tag}>");
    let start = rest.find(&open)? + open.len();
    let end = rest[start..].find(&format!("</{tag}>"))? + start;
    Some(squash(&rest[start..end]))
}

/// The text inside the element whose start tag begins with `anchor` (e.g.
/// `<value name="FAILED"`), up to its `</element>`, whitespace squashed.
pub fn xml_inner(xml: &str, anchor: &str, element: &str) -> Option<String> {
    let from = xml.find(anchor)?;
    let start = xml[from..].find('>')? + from + 1;
    let end = xml[start..].find(&format!("</{element}>"))? + start;
    Some(squash(&xml[start..end]))
}

/// XML documentation text as Asterisk prints it without colours: inline
/// markup becomes quotes or brackets, entities are decoded.
pub fn rendered(text: &str) -> String {
    let replacements = [
        ("<replaceable>", "<"),
        ("</replaceable>", ">"),
        ("<literal>", "'"),
        ("</literal>", "'"),
        ("<astcli>", "'"),
        ("</astcli>", "'"),
        ("<filename>", "\""),
        ("</filename>", "\""),
        ("<variable>", "${"),
        ("</variable>", "}"),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&amp;", "&"),
    ];
    let mut out = text.to_owned();
    for (from, to) in replacements {
        out = out.replace(from, to);
    }
    squash(&out)
}

/// Value of `attr="…"` inside one start tag.
fn attribute(tag: &str, attr: &str) -> Option<String> {
    let key = format!(" {attr}=\"");
    let start = tag.find(&key)? + key.len();
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_owned())
}

/// Start tags `<name …>` in document order.
pub fn xml_start_tags<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name} ");
    let mut tags = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find(&open) {
        let end = rest[at..].find('>').map_or(rest.len(), |e| at + e + 1);
        tags.push(&rest[at..end]);
        rest = &rest[end..];
    }
    tags
}

/// `(name, default)` of every `<configOption>`; the default is "" when absent.
pub fn xml_options(xml: &str) -> Vec<(String, String)> {
    xml_start_tags(xml, "configOption")
        .into_iter()
        .map(|tag| (attribute(tag, "name").unwrap_or_default(), attribute(tag, "default").unwrap_or_default()))
        .collect()
}

/// Every `name` attribute of the start tags `<name …>`.
pub fn xml_names(xml: &str, element: &str) -> Vec<String> {
    xml_start_tags(xml, element).into_iter().filter_map(|tag| attribute(tag, "name")).collect()
}

/// `(name, value)` of a commented-out setting line (`;name = value`), as
/// opposed to a comment (`; text`).
pub fn commented_setting(line: &str) -> Option<(String, String)> {
    let (name, value) = line.trim_end().strip_prefix(';')?.split_once('=')?;
    let name = name.trim_end();
    let is_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    is_name.then(|| (name.to_owned(), value.trim().to_owned()))
}

/// `(name, value)` of the commented-out settings of the sample file's
/// `[general]` section.
pub fn sample_options(sample: &str) -> Vec<(String, String)> {
    let mut in_general = false;
    let mut found = Vec::new();
    for line in sample.lines() {
        if line.starts_with('[') {
            in_general = line.trim() == "[general]";
        } else if let Some(setting) = commented_setting(line).filter(|_| in_general) {
            found.push(setting);
        }
    }
    found
}

/// The comment block the sample file gives an option: from `; name:` to the
/// commented-out setting.
pub fn sample_block<'a>(sample: &'a str, name: &str) -> Option<&'a str> {
    let start = sample.find(&format!("; {name}:"))?;
    let end = sample[start..].find(&format!("\n;{name} ="))? + start;
    Some(&sample[start..end])
}

/// The README section that starts with `## {title}`, up to the next `## `.
pub fn readme_section<'a>(readme: &'a str, title: &str) -> Option<&'a str> {
    let heading = format!("## {title}\n");
    let start = readme.find(&format!("\n{heading}"))? + 1;
    let body = start + heading.len();
    let end = readme[body..].find("\n## ").map_or(readme.len(), |e| body + e);
    Some(&readme[start..end])
}

/// `(option, default)` of the option table of a README section (the table
/// whose header starts `| option |`): the first cell is the name, the third
/// the default, backticks off.
pub fn readme_options(section: &str) -> Vec<(String, String)> {
    section
        .lines()
        .skip_while(|line| !line.starts_with("| option |"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let name = cells.first()?.trim_matches('`');
            let default = cells.get(2)?.trim_matches('`');
            Some((name.to_owned(), default.to_owned()))
        })
        .collect()
}
