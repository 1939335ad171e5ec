//! What the runtime's ARI has, read from its version (SPEC.md's facts):
//! each list gives the first release of every branch that has the feature.

use asterisk_harness::Runtime;

#[derive(Clone, Debug)]
pub struct AriFacts {
    pub version: String,
    /// `POST /events/claim` in res_ari_events: 20.20, 22.10, 23.4.
    pub claim_route: bool,
    /// ARI's configuration in sorcery: 20.15, 21.10, 22.5, 23.0. Before it,
    /// ARI validates credentials with `ast_ari_config_validate_user`, which
    /// the module calls; user names are then matched case-insensitively.
    pub sorcery: bool,
    /// Per-user `permit`/`deny`/`acl`: 20.19, 21.12.3, 22.9, 23.3. Older ARI
    /// refuses a user section with those options.
    pub user_acls: bool,
    /// ARI matches the `api_key` parameter name exactly (the security
    /// releases 20.20.1, 21.12.3, 22.10.1, 23.4.1); before, case-insensitively.
    pub exact_api_key: bool,
    /// REST requests over the events WebSocket (`RESTRequest`, answered by a
    /// `RESTResponse`): 20.14, 21.9, 22.4, 23.0.
    pub rest_over_websocket: bool,
    /// A WebSocket opened with `api_key` in its URL passes that user to its
    /// REST requests (the same security releases; advisory
    /// GHSA-wcvv-g26m-wx5c): before, ARI sees no user on them.
    pub websocket_passes_api_key: bool,
    /// Outbound WebSockets (`ari.conf` `type=outbound_websocket`,
    /// res_websocket_client): 20.15, 21.10, 22.5, 23.0.
    pub outbound_websocket: bool,
}

/// Whether `version` is at least the release its branch has in `firsts`
/// (major, minor, patch); a branch not listed counts when it is newer than
/// every branch listed.
pub fn at_least((major, minor, patch): (u32, u32, u32), firsts: &[(u32, u32, u32)]) -> bool {
    match firsts.iter().find(|(m, _, _)| *m == major) {
        Some((_, first_minor, first_patch)) => (minor, patch) >= (*first_minor, *first_patch),
        None => firsts.iter().all(|(m, _, _)| major > *m),
    }
}

impl AriFacts {
    pub fn of(runtime: &Runtime) -> AriFacts {
        let version = runtime.version();
        AriFacts {
            version: runtime.asterisk_version(),
            claim_route: at_least(version, &[(20, 20, 0), (22, 10, 0), (23, 4, 0)]),
            sorcery: at_least(version, &[(20, 15, 0), (21, 10, 0), (22, 5, 0), (23, 0, 0)]),
            user_acls: at_least(version, &[(20, 19, 0), (21, 12, 3), (22, 9, 0), (23, 3, 0)]),
            exact_api_key: at_least(version, &[(20, 20, 1), (21, 12, 3), (22, 10, 1), (23, 4, 1)]),
            websocket_passes_api_key: at_least(version, &[(20, 20, 1), (21, 12, 3), (22, 10, 1), (23, 4, 1)]),
            rest_over_websocket: at_least(version, &[(20, 14, 0), (21, 9, 0), (22, 4, 0), (23, 0, 0)]),
            outbound_websocket: at_least(version, &[(20, 15, 0), (21, 10, 0), (22, 5, 0), (23, 0, 0)]),
        }
    }

    pub fn of_runtime() -> AriFacts {
        let facts = AriFacts::of(&Runtime::locate());
        println!("runtime ARI: {facts:?}");
        facts
    }
}
