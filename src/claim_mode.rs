//! Who serves `POST /ari/events/claim`: ARI's own route (which calls this
//! module through the optional API), this module's node in ARI's REST
//! handler tree, or its own HTTP handler beside ARI. Pure: decided from
//! `claim_endpoint` and the running Asterisk's version string.

use std::fmt;

use crate::config::ClaimEndpoint;

/// The effective claim endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// res_ari_events routes the claim to `stasis_app_claim_channel`.
    Ari,
    /// The module's `claim` node in ARI's tree (its own HTTP handler where
    /// the node cannot be installed).
    Module,
    /// The module's own HTTP handler for `ari/events/claim`, beside ARI.
    Http,
}

impl fmt::Display for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Served::Ari => "ari",
            Served::Module => "module",
            Served::Http => "http",
        })
    }
}

/// The choice and why it was made, for the log and `show settings`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub served: Served,
    pub reason: String,
    /// Claims may not work this way: worth a WARNING.
    pub warn: bool,
}

/// Major, minor and patch of an Asterisk version string such as
/// `22.10.1`, `20.7-cert5`, `certified-20.7-cert5` or
/// `22.10.1+dfsg+~cs6.17.60671434-1` (a distribution suffix).
pub fn parse_version(version: &str) -> Option<(u32, u32, u32)> {
    let version = version.trim();
    let version = version.strip_prefix("certified-").or_else(|| version.strip_prefix("certified/")).unwrap_or(version);
    let mut numbers = version.split(|c: char| !c.is_ascii_digit());
    let major = numbers.next()?.parse().ok()?;
    let minor = numbers.next().filter(|part| !part.is_empty())?.parse().ok()?;
    let patch = numbers.next().and_then(|part| part.parse().ok()).unwrap_or(0);
    Some((major, minor, patch))
}

/// Whether `res_ari_events` of that version routes `/events/claim`: 20.20+,
/// 22.10+, 23.4+ and every later major (21 never got it).
pub fn has_claim_route((major, minor, _): (u32, u32, u32)) -> bool {
    match major {
        0..=19 | 21 => false,
        20 => minor >= 20,
        22 => minor >= 10,
        23 => minor >= 4,
        _ => true,
    }
}

/// Whether that ARI refuses a `read_only` user's POST sent over its
/// WebSocket. REST over WebSocket arrived in 20.14, 21.9, 22.4 and 23.0;
/// until 20.20.1, 21.12.3, 22.10.1 and 23.4.1 (advisory GHSA-wcvv-g26m-wx5c)
/// a WebSocket authenticated with `api_key` passes no user to its requests,
/// so ARI cannot refuse them.
pub fn websocket_refuses_read_only((major, minor, patch): (u32, u32, u32)) -> bool {
    let (since, fixed) = match major {
        0..=19 => return true,
        20 => ((20, 14, 0), (20, 20, 1)),
        21 => ((21, 9, 0), (21, 12, 3)),
        22 => ((22, 4, 0), (22, 10, 1)),
        23 => ((23, 0, 0), (23, 4, 1)),
        _ => return true,
    };
    let version = (major, minor, patch);
    version < since || version >= fixed
}

/// Whether that ARI crashes on a REST request over its WebSocket that carries
/// the credentials of a user with an ACL (`permit`, `deny` or `acl` in the
/// user's ari.conf section). Per-user ACLs arrived in 20.19, 22.9 and 23.3
/// (21.12.3 got them fixed); until 20.20.1, 22.10.1 and 23.4.1,
/// `ast_ari_invoke` applies them to the HTTP connection's address, which a
/// WebSocket request has none of (a NULL session: SIGSEGV).
pub fn websocket_crashes_on_acl_users((major, minor, patch): (u32, u32, u32)) -> bool {
    let (since, fixed) = match major {
        20 => ((20, 19, 0), (20, 20, 1)),
        22 => ((22, 9, 0), (22, 10, 1)),
        23 => ((23, 3, 0), (23, 4, 1)),
        _ => return false,
    };
    let version = (major, minor, patch);
    since <= version && version < fixed
}

/// The effective endpoint for the `claim_endpoint` setting on the Asterisk
/// whose version string is `version`.
pub fn decide(setting: ClaimEndpoint, version: &str) -> Decision {
    let parsed = parse_version(version);
    let route = parsed.map(has_claim_route);
    let safe_route = parsed.map(|parsed| has_claim_route(parsed) && websocket_refuses_read_only(parsed));
    let (served, reason, warn) = match (setting, route) {
        (ClaimEndpoint::Module, Some(true)) => (
            Served::Module,
            format!("claim_endpoint=module: this module's node in ARI's tree serves it, in place of the route Asterisk {version} has"),
            false,
        ),
        (ClaimEndpoint::Module, _) => {
            (Served::Module, "claim_endpoint=module: this module's node in ARI's tree serves it".into(), false)
        }
        (ClaimEndpoint::Http, _) => (
            Served::Http,
            "claim_endpoint=http: this module's own HTTP handler serves it beside ARI (not over ARI's WebSocket)".into(),
            false,
        ),
        (ClaimEndpoint::Ari, Some(true)) => {
            (Served::Ari, format!("claim_endpoint=ari: Asterisk {version} routes it to this module"), false)
        }
        (ClaimEndpoint::Ari, Some(false)) => (
            Served::Ari,
            format!(
                "claim_endpoint=ari, but Asterisk {version} has no claim route: ARI answers 404 to every claim; \
                 set claim_endpoint=auto or module"
            ),
            true,
        ),
        (ClaimEndpoint::Ari, None) => (
            Served::Ari,
            format!(
                "claim_endpoint=ari, version '{version}' not recognised: if it has no claim route, ARI answers 404 \
                 to every claim"
            ),
            true,
        ),
        (ClaimEndpoint::Auto, Some(true)) if safe_route == Some(true) => {
            (Served::Ari, format!("claim_endpoint=auto: Asterisk {version} routes it to this module"), false)
        }
        (ClaimEndpoint::Auto, Some(true)) => (
            Served::Module,
            format!(
                "claim_endpoint=auto: Asterisk {version} routes it, but lets read_only users POST over its WebSocket, \
                 so this module's node in ARI's tree serves it"
            ),
            false,
        ),
        (ClaimEndpoint::Auto, Some(false)) => (
            Served::Module,
            format!("claim_endpoint=auto: Asterisk {version} has no claim route, so this module serves it in ARI's tree"),
            false,
        ),
        (ClaimEndpoint::Auto, None) => (
            Served::Module,
            format!(
                "claim_endpoint=auto: version '{version}' not recognised, so this module serves it in ARI's tree (works on every version)"
            ),
            false,
        ),
    };
    Decision { served, reason, warn }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("22.10.1"), Some((22, 10, 1)));
        assert_eq!(parse_version("22.10.1+dfsg+~cs6.17.60671434-1"), Some((22, 10, 1)));
        assert_eq!(parse_version("20.7-cert5"), Some((20, 7, 0)));
        assert_eq!(parse_version("certified-20.7-cert5"), Some((20, 7, 0)));
        assert_eq!(parse_version("23.4.0-rc1"), Some((23, 4, 0)));
        assert_eq!(parse_version("21.0.0"), Some((21, 0, 0)));
        assert_eq!(parse_version("GIT-master-abc123"), None);
        assert_eq!(parse_version("22"), None);
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn routes() {
        for (version, expected) in [
            ("20.0.0", false),
            ("20.19.0", false),
            ("20.20.0", true),
            ("20.20.1", true),
            ("21.12.3", false),
            ("22.0.0", false),
            ("22.9.0", false),
            ("22.10.0", true),
            ("22.10.1", true),
            ("23.0.0", false),
            ("23.3.0", false),
            ("23.4.0", true),
            ("24.0.0", true),
            ("18.26.0", false),
            ("certified-20.7-cert5", false),
        ] {
            assert_eq!(has_claim_route(parse_version(version).expect(version)), expected, "{version}");
        }
    }

    #[test]
    fn websocket_read_only_hole() {
        for (version, refuses) in [
            ("20.6.0", true),
            ("20.14.0", false),
            ("20.20.0", false),
            ("20.20.1", true),
            ("21.8.0", true),
            ("21.12.2", false),
            ("21.12.3", true),
            ("22.3.0", true),
            ("22.9.0", false),
            ("22.10.1", true),
            ("23.3.0", false),
            ("23.4.1", true),
            ("24.0.0", true),
        ] {
            assert_eq!(websocket_refuses_read_only(parse_version(version).expect(version)), refuses, "{version}");
        }
    }

    #[test]
    fn websocket_acl_crash() {
        for (version, crashes) in [
            ("20.6.0", false),
            ("20.18.2", false),
            ("20.19.0", true),
            ("20.20.0", true),
            ("20.20.1", false),
            ("21.12.2", false),
            ("21.12.3", false),
            ("22.8.2", false),
            ("22.9.0", true),
            ("22.10.0", true),
            ("22.10.1", false),
            ("23.2.2", false),
            ("23.3.0", true),
            ("23.4.0", true),
            ("23.4.1", false),
            ("24.0.0", false),
        ] {
            assert_eq!(websocket_crashes_on_acl_users(parse_version(version).expect(version)), crashes, "{version}");
        }
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(ClaimEndpoint::Auto, "22.10.1").served, Served::Ari);
        assert_eq!(decide(ClaimEndpoint::Auto, "22.9.0").served, Served::Module);
        assert_eq!(decide(ClaimEndpoint::Auto, "21.5.0").served, Served::Module);
        assert_eq!(decide(ClaimEndpoint::Auto, "GIT-master-1").served, Served::Module);
        assert_eq!(decide(ClaimEndpoint::Module, "22.10.1").served, Served::Module);
        assert!(decide(ClaimEndpoint::Module, "22.10.1").reason.contains("in place of"));
        assert_eq!(decide(ClaimEndpoint::Http, "22.9.0").served, Served::Http);
        // A route, but a WebSocket that lets read_only users POST: the module's node.
        assert_eq!(decide(ClaimEndpoint::Auto, "22.10.0").served, Served::Module);
        assert_eq!(decide(ClaimEndpoint::Auto, "23.4.0").served, Served::Module);
        assert_eq!(decide(ClaimEndpoint::Auto, "23.4.1").served, Served::Ari);
        assert_eq!(decide(ClaimEndpoint::Auto, "20.20.1").served, Served::Ari);
        assert_eq!(decide(ClaimEndpoint::Ari, "21.5.0").served, Served::Ari);
        assert!(decide(ClaimEndpoint::Ari, "21.5.0").warn);
        assert!(decide(ClaimEndpoint::Ari, "GIT-master-1").warn);
        assert!(!decide(ClaimEndpoint::Ari, "22.10.1").warn);
        assert!(!decide(ClaimEndpoint::Auto, "21.5.0").warn);
        assert!(decide(ClaimEndpoint::Auto, "21.5.0").reason.contains("21.5.0"));
    }
}
