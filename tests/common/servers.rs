//! Several Asterisk servers side by side, as a call centre that has outgrown
//! one Asterisk runs them: each with its own entity id (`asterisk_id` in ARI),
//! all with the same dialplan.

use super::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// `100@incoming` offers the call for 5 s to the applications whose name
/// contains `agent` (so an observer application is never offered it), and
/// records what the dialplan saw after `StasisBroadcast()` in `RESULT_<id>`,
/// and at hang-up `HANGUP_<id>` = `STASISSTATUS:HANGUPCAUSE`. Originated with
/// the `answered` caller context, the other half of the Local pair records
/// `ANSWERED_<its id>` once the broadcast channel is answered.
pub const DIALPLAN: &str = "[incoming]
exten => 100,1,StasisBroadcast(5000,agent)
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Hangup()
exten => h,1,Set(GLOBAL(HANGUP_${UNIQUEID})=${STASISSTATUS}:${HANGUPCAUSE})

[answered]
exten => s,1,Set(GLOBAL(ANSWERED_${UNIQUEID})=yes)
 same => n,Wait(120)
";

/// One server and the entity id it was configured with.
pub struct Server {
    pub asterisk: Asterisk,
    pub entity_id: String,
}

/// The entity id of server `n`: a locally administered MAC address, so it can
/// never be a real interface's.
pub fn entity_id(n: usize) -> String {
    format!("02:00:00:00:00:{:02x}", n + 1)
}

/// Boots `count` servers with entity ids `02:00:00:00:00:01`, `…:02`, … and
/// checks that ARI reports each one's (`GET /ari/asterisk/info`, `system.entity_id`).
pub fn start_servers(count: usize, label: &str) -> Vec<Server> {
    (0..count)
        .map(|n| {
            let entity_id = entity_id(n);
            let asterisk = Asterisk::start(
                AsteriskConfig::new(ours())
                    .dialplan(DIALPLAN)
                    // DELETE /ari/playbacks/{id}: the agents stop the tone they play.
                    .load("res_ari_playbacks.so")
                    .option(&format!("entityid = {entity_id}"))
                    .label(&format!("{label}-{}", n + 1)),
            );
            let info = asterisk.ari().get("/asterisk/info");
            assert_eq!(info.status, 200, "GET /asterisk/info: {}", info.body);
            assert_eq!(info.json()["system"]["entity_id"], entity_id.as_str(), "entityid from asterisk.conf: {}", info.body);
            Server { asterisk, entity_id }
        })
        .collect()
}

/// What an agent learns when it connects: asterisk_id → base URL.
pub fn routing_table(servers: &[Server]) -> BTreeMap<String, String> {
    servers.iter().map(|s| (s.entity_id.clone(), s.asterisk.base_url())).collect()
}

/// The number after `label` in `stasis broadcast show stats`.
pub fn stat(stats: &str, label: &str) -> u64 {
    stats
        .lines()
        .find_map(|line| line.trim_start().strip_prefix(label))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or_else(|| panic!("no number after '{label}' in:\n{stats}"))
}

/// Waits for a global variable, panicking with what it was waiting for.
pub fn global(asterisk: &Asterisk, name: &str) -> String {
    asterisk.wait_for_global(name, Duration::from_secs(10)).unwrap_or_else(|| panic!("global {name} never set\n{}", asterisk.diagnostics()))
}

/// Whether an ARI event is about that channel (as the channel, or as a playback's target).
pub fn mentions(event: &Value, channel_id: &str) -> bool {
    event["channel"]["id"] == channel_id || event["playback"]["target_uri"] == format!("channel:{channel_id}").as_str()
}
