//! The three places that describe `stasis_broadcast.conf` (the sample file,
//! the XML documentation Asterisk shows, the README) name the same options
//! with the same defaults, and the XML documents what the module does. No
//! Asterisk needed. (That the module's own defaults are these is checked in
//! tests/install.rs, against `stasis broadcast show settings`: integration
//! tests cannot link the crate, which needs Asterisk's symbols.)

mod common;

use common::docs::*;

/// Differences between one source's `(option, default)` list and `OPTIONS`.
fn differences(source: &str, found: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, default) in OPTIONS {
        match found.iter().filter(|(n, _)| n == name).collect::<Vec<_>>().as_slice() {
            [] => problems.push(format!("{source}: option {name} missing")),
            [(_, value)] if value == default => {}
            [(_, value)] => problems.push(format!("{source}: {name} default is {value:?}, expected {default:?}")),
            more => problems.push(format!("{source}: {name} appears {} times", more.len())),
        }
    }
    for (name, _) in found {
        if !OPTIONS.iter().any(|(n, _)| n == name) {
            problems.push(format!("{source}: unknown option {name}"));
        }
    }
    problems
}

#[test]
fn sample_xml_and_readme_give_every_option_the_same_default() {
    let readme = repo_file("README.md");
    let section = readme_section(&readme, "Configuration").expect("README has a ## Configuration section");
    let mut problems = differences(SAMPLE_CONF, &sample_options(&repo_file(SAMPLE_CONF)));
    problems.extend(differences(XMLDOC, &xml_options(&repo_file(XMLDOC))));
    problems.extend(differences("README.md ## Configuration", &readme_options(section)));
    assert!(problems.is_empty(), "the documentation disagrees:\n{}", problems.join("\n"));
}

#[test]
fn the_sample_explains_each_option_with_values_default_and_example() {
    let sample = repo_file(SAMPLE_CONF);
    assert!(sample.lines().any(|l| l.trim() == "[general]"), "one [general] section");
    for (name, default) in OPTIONS {
        let block = sample_block(&sample, name).unwrap_or_else(|| panic!("no '; {name}:' block before ';{name} ='"));
        assert!(block.contains("Values:"), "{name}: no Values line\n{block}");
        assert!(block.contains(&format!("Default: {default}\n")), "{name}: no 'Default: {default}'\n{block}");
        assert!(block.contains(&format!("Example: {name} = ")), "{name}: no example\n{block}");
    }
    // Nothing is switched on by the sample: every setting is commented out.
    let active: Vec<&str> =
        sample.lines().filter(|l| !l.trim().is_empty() && !l.starts_with(';') && !l.starts_with('[')).collect();
    assert!(active.is_empty(), "uncommented lines in the sample: {active:?}");
}

#[test]
fn the_xml_documents_the_application_its_status_values_and_the_config() {
    let xml = repo_file(XMLDOC);
    // Asterisk reads $(ASTDATADIR)/documentation/thirdparty/*-<language>.xml whose root is <docs>.
    assert!(XMLDOC.ends_with("-en_US.xml"), "{XMLDOC}");
    assert!(xml.contains("\n<docs ") && xml.trim_end().ends_with("</docs>"), "root element is docs");

    let app = &xml[xml.find("<application name=\"StasisBroadcast\"").expect("StasisBroadcast documented")..];
    let app = &app[..app.find("</application>").expect("application closed")];
    assert!(app.contains("module=\"res_stasis_broadcast_rs\""), "provided by this module");
    assert_eq!(xml_names(app, "parameter"), ["timeout", "app_filter", "args", "notify_claimed"]);
    assert_eq!(xml_names(app, "variable"), ["STASISSTATUS"]);
    assert_eq!(xml_names(app, "value"), ["SUCCESS", "FAILED", "TIMEOUT"]);
    for needle in ["CallBroadcast", "CallClaimed", "/ari/events/claim", "<ref type=\"application\">Stasis</ref>"] {
        assert!(app.contains(needle), "application docs mention {needle}");
    }
    for command in ["stasis broadcast show broadcasts", "stasis broadcast show stats", "stasis broadcast show settings"]
    {
        assert!(app.contains(&format!("<ref type=\"astcli\">{command}</ref>")), "see-also {command}");
        assert!(xml.contains(&format!("<enum name=\"{command}\">")), "configInfo lists {command}");
    }

    assert_eq!(xml_names(&xml, "configInfo"), ["res_stasis_broadcast_rs"]);
    assert_eq!(xml_names(&xml, "configFile"), ["stasis_broadcast.conf"]);
    assert_eq!(xml_names(&xml, "configObject"), ["general"]);
    for (name, _) in OPTIONS {
        let anchor = format!("<configOption name=\"{name}\"");
        let synopsis = xml_text_after(&xml, &anchor, "synopsis").unwrap_or_default();
        let description = xml_text_after(&xml, &anchor, "description").unwrap_or_default();
        assert!(!synopsis.is_empty() && !description.is_empty(), "{name}: synopsis and description");
    }
}

#[test]
fn the_readme_configuration_section_follows_the_dialplan_application() {
    let readme = repo_file("README.md");
    let headings: Vec<&str> = readme.lines().filter(|l| l.starts_with("## ")).collect();
    let at = headings.iter().position(|h| *h == "## Configuration").expect("## Configuration");
    assert_eq!(headings.get(at.wrapping_sub(1)), Some(&"## The dialplan application"), "{headings:?}");
    let section = readme_section(&readme, "Configuration").expect("section");
    for needle in
        ["stasis_broadcast.conf", "module reload res_stasis_broadcast_rs.so", "make install", "make uninstall"]
    {
        assert!(section.contains(needle), "the Configuration section mentions {needle}");
    }
}
