//! What the claim tests of ARI's front door share: the answers' texts, and
//! the users and `[general]` options both the claim node (tests/claim_route.rs)
//! and the HTTP handler (tests/endpoint.rs) are judged with.

use super::ari_facts::AriFacts;
use asterisk_harness::{AriUser, AsteriskConfig};

pub const CLAIM_PATH: &str = "/ari/events/claim";
/// ARI's own POST resource beside the claim (`events` → `user` →
/// `{eventName}`, res_ari_events).
pub const PROBE_PATH: &str = "/ari/events/user/sbprobe";
pub const REALM: &str = "Claims Realm";
/// `openssl passwd -6 -salt sbtestsalt hunter2`.
pub const HUNTER2_HASH: &str =
    "$6$sbtestsalt$shGzwJLG1jVnBszQRvAYiFmNOS.QQuNd1Yl9h.Z7..IgiimpN4a7O23qzAiTmuO0uaet3dys89skax.W29Alf.";
pub const ALLOWED_ORIGINS: [&str; 2] = ["http://good.example", "http://other.example"];
pub const UNKNOWN: &str = "channelId=no-such-channel&application=claimer";
pub const CHANNEL_NOT_FOUND: &str = "Channel not found or not in broadcast state";
pub const ALREADY_CLAIMED: &str = "Channel has already been claimed by another application";
pub const NEED_CHANNEL: &str = "channelId parameter is required";

/// `config` with the realm, the allowed origins and the users: `test`
/// (read-write, the harness's), `viewer` (read-only), `hashed` (crypt) and,
/// where ARI has per-user ACLs, `local` (allowed from 127.0.0.1), `fenced`
/// and `named` (refused by permit/deny and by a named ACL).
pub fn with_front_door_users(config: AsteriskConfig, facts: &AriFacts) -> AsteriskConfig {
    let config = config
        .ari_general(&format!("auth_realm = {REALM}"))
        // After the harness's `allowed_origins = *`: the last value counts, in ARI and in the module.
        .ari_general(&format!("allowed_origins = {}", ALLOWED_ORIGINS.join(",")))
        .ari_user(AriUser::crypt("hashed", HUNTER2_HASH))
        .ari_user(AriUser::plain("viewer", "v").read_only(true));
    if !facts.user_acls {
        return config;
    }
    config
        .ari_user(AriUser::plain("local", "l").extra("deny=0.0.0.0/0.0.0.0\npermit=127.0.0.1"))
        .ari_user(AriUser::plain("fenced", "f").extra("deny=0.0.0.0/0.0.0.0\npermit=10.0.0.0/255.0.0.0"))
        .ari_user(AriUser::plain("named", "n").extra("acl=blocked"))
        .file("acl.conf", "[blocked]\ndeny=0.0.0.0/0.0.0.0\n")
}
