//! ARI's API description of the events resource (`/ari/api-docs/events.json`),
//! completed with what this module adds to ARI: the `CallBroadcast` and
//! `CallClaimed` event models and the `POST /events/claim` operation.
//!
//! ARI clients build their models from that description; npm `ari-client`
//! throws on an event whose type it has no model for, and offers
//! `client.events.claimChannel` only if the operation is described. Asterisk
//! describes them itself from 20.20, 22.10 and 23.4 on; before that, the
//! module answers `GET /ari/api-docs/events.json` with Asterisk's own
//! document plus these entries.
//!
//! Pure: whether to serve is decided from the text of Asterisk's
//! `events.json` (never from a version number), and the entries are added
//! to a `serde_json` value whose key order is the document's.

use std::{fmt, io};

use serde_json::{json, Map, Value};

use crate::ari_auth::{Method, Response};

/// The document, under `<astdatadir>/rest-api/` and `/ari/api-docs/`.
pub const FILE_NAME: &str = "events.json";
/// The claim resource, as the description writes API paths.
pub const CLAIM_PATH: &str = "/events/claim";
/// The operation's `nickname`: ari-client's `client.events.claimChannel`.
pub const CLAIM_NICKNAME: &str = "claimChannel";
/// The event models, in the order they are added.
pub const MODELS: [&str; 2] = ["CallBroadcast", "CallClaimed"];
/// The model whose `subTypes` lists every event type.
const EVENT_MODEL: &str = "Event";

/// What a description lacks of this module's entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Missing {
    /// Event models not in `models`.
    pub models: Vec<&'static str>,
    /// Event types not in the `Event` model's `subTypes` (only counted when
    /// that model and list exist).
    pub subtypes: Vec<&'static str>,
    /// No POST operation on `/events/claim`.
    pub claim_operation: bool,
}

impl Missing {
    pub fn is_empty(&self) -> bool {
        self.models.is_empty() && self.subtypes.is_empty() && !self.claim_operation
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        match self.models.as_slice() {
            [] => {}
            [one] => parts.push(format!("the {one} model")),
            many => parts.push(format!("the {} models", many.join(" and "))),
        }
        if self.models.is_empty() && !self.subtypes.is_empty() {
            parts.push(format!("{} among the event subtypes", self.subtypes.join(" and ")));
        }
        if self.claim_operation {
            parts.push(format!("POST {CLAIM_PATH}"));
        }
        f.write_str(&parts.join(", "))
    }
}

/// What a description lacks; `None` if it is not shaped like one (an object
/// with a `models` object and an `apis` array).
pub fn missing(doc: &Value) -> Option<Missing> {
    let models = doc.get("models")?.as_object()?;
    let apis = doc.get("apis")?.as_array()?;
    let subtypes = event_subtypes(models);
    Some(Missing {
        models: MODELS.into_iter().filter(|name| !models.get(*name).is_some_and(Value::is_object)).collect(),
        subtypes: match subtypes {
            Some(list) => MODELS.into_iter().filter(|name| !list.iter().any(|item| item == name)).collect(),
            None => Vec::new(),
        },
        claim_operation: !apis.iter().any(|api| is_claim_api(api) && claim_operation(api).is_some()),
    })
}

fn event_subtypes(models: &Map<String, Value>) -> Option<&Vec<Value>> {
    models.get(EVENT_MODEL)?.get("subTypes")?.as_array()
}

fn is_claim_api(api: &Value) -> bool {
    api.get("path").and_then(Value::as_str) == Some(CLAIM_PATH)
}

fn claim_operation(api: &Value) -> Option<&Value> {
    api.get("operations")?
        .as_array()?
        .iter()
        .find(|operation| operation.get("httpMethod").and_then(Value::as_str) == Some("POST"))
}

/// Adds what `doc` lacks, after what it has: models at the end of `models`,
/// their names at the end of the `Event` model's `subTypes`, the claim
/// resource at the end of `apis` (or its operation to an existing
/// `/events/claim` resource). Adding to a complete document changes
/// nothing. False, and `doc` untouched, if it is not shaped like a description.
pub fn add_entries(doc: &mut Value) -> bool {
    let Some(missing) = missing(doc) else { return false };
    let Some(root) = doc.as_object_mut() else { return false };
    if let Some(models) = root.get_mut("models").and_then(Value::as_object_mut) {
        for name in &missing.models {
            models.insert((*name).to_owned(), model(name));
        }
        let subtypes =
            models.get_mut(EVENT_MODEL).and_then(|event| event.get_mut("subTypes")).and_then(Value::as_array_mut);
        if let Some(subtypes) = subtypes {
            subtypes.extend(missing.subtypes.iter().map(|name| Value::from(*name)));
        }
    }
    if missing.claim_operation {
        if let Some(apis) = root.get_mut("apis").and_then(Value::as_array_mut) {
            match apis.iter_mut().find(|api| is_claim_api(api)) {
                Some(api) => add_operation(api),
                None => apis.push(claim_api()),
            }
        }
    }
    true
}

/// An `/events/claim` resource that has no POST operation gets ours.
fn add_operation(api: &mut Value) {
    let Some(api) = api.as_object_mut() else { return };
    let operations = api.entry("operations").or_insert_with(|| Value::Array(Vec::new()));
    match operations.as_array_mut() {
        Some(list) => list.push(claim_operation_entry()),
        None => *operations = Value::Array(vec![claim_operation_entry()]),
    }
}

/// ARI's answer text with the entries added, in compact form (the caller
/// re-encodes it in ARI's configured format); `None` if the text is not a
/// description this module can complete, to be served as ARI gave it.
pub fn complete(text: &str) -> Option<String> {
    let mut doc: Value = serde_json::from_str(text).ok()?;
    if !add_entries(&mut doc) {
        return None;
    }
    serde_json::to_string(&doc).ok()
}

fn model(name: &str) -> Value {
    match name {
        "CallBroadcast" => json!({
            "id": "CallBroadcast",
            "description": "A call is offered to ARI applications by StasisBroadcast(); \
                            the first one to claim it (POST /events/claim) gets it.",
            "properties": {
                "channel": {
                    "required": true,
                    "type": "Channel",
                    "description": "The channel on offer."
                },
                "caller": {
                    "required": false,
                    "type": "string",
                    "description": "Caller ID number of the channel (empty if it has none)."
                },
                "called": {
                    "required": false,
                    "type": "string",
                    "description": "The dialplan extension the call arrived at."
                }
            }
        }),
        _ => json!({
            "id": "CallClaimed",
            "description": "A call offered by StasisBroadcast() was claimed; \
                            sent to every application it was offered to.",
            "properties": {
                "channel": {
                    "required": true,
                    "type": "Channel",
                    "description": "The claimed channel."
                },
                "winner_app": {
                    "required": true,
                    "type": "string",
                    "description": "Name of the ARI application whose claim won."
                }
            }
        }),
    }
}

fn claim_api() -> Value {
    json!({
        "path": CLAIM_PATH,
        "description": "Claiming calls offered by StasisBroadcast()",
        "operations": [claim_operation_entry()]
    })
}

fn claim_operation_entry() -> Value {
    json!({
        "httpMethod": "POST",
        "summary": "Claim a call offered to this application.",
        "notes": "The first claim of a call wins and the channel enters Stasis in that application; \
                  every later claim is refused.",
        "nickname": CLAIM_NICKNAME,
        "responseClass": "void",
        "parameters": [
            {
                "name": "channelId",
                "description": "Id of the channel offered in CallBroadcast",
                "paramType": "query",
                "required": true,
                "allowMultiple": false,
                "dataType": "string"
            },
            {
                "name": "application",
                "description": "Name of the claiming ARI application",
                "paramType": "query",
                "required": true,
                "allowMultiple": false,
                "dataType": "string"
            }
        ],
        "errorResponses": [
            {
                "code": 400,
                "reason": "channelId or application is missing."
            },
            {
                "code": 404,
                "reason": "No call is being offered on this channel."
            },
            {
                "code": 409,
                "reason": "Another application claimed the call first."
            }
        ]
    })
}

/// Whether the module serves the description, decided at load and reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Asterisk's own document already has every entry: ARI serves it.
    AsteriskHasThem,
    /// The module serves the document with what it lacks added.
    Serve(Missing),
    /// Asterisk's document could not be read or is not a description: ARI
    /// serves whatever it has, and the module adds nothing.
    Unusable(String),
}

impl Decision {
    pub fn serves(&self) -> bool {
        matches!(self, Decision::Serve(_))
    }

    /// Worth a WARNING: ARI clients may fail on the module's events.
    pub fn warn(&self) -> bool {
        matches!(self, Decision::Unusable(_))
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::AsteriskHasThem => write!(
                f,
                "Asterisk's {FILE_NAME} already describes {} and POST {CLAIM_PATH}; ARI serves it unchanged",
                MODELS.join(", ")
            ),
            Decision::Serve(missing) => write!(
                f,
                "Asterisk's {FILE_NAME} lacks {missing}; this module serves GET /ari/api-docs/{FILE_NAME} \
                 with them added"
            ),
            Decision::Unusable(why) => write!(
                f,
                "{why}; ARI serves its api-docs unchanged, and clients that build models from them \
                 (ari-client) may fail on {} events",
                MODELS.join("/")
            ),
        }
    }
}

/// The decision from Asterisk's `events.json` at `path`, as read (`Err`: why
/// it could not be).
pub fn decide(path: &str, text: Result<&str, String>) -> Decision {
    match text {
        Ok(text) => judge(path, scan::missing(serde_json::de::StrRead::new(text))),
        Err(why) => Decision::Unusable(format!("cannot read {path}: {why}")),
    }
}

/// [`decide`] from the file at `path`, read as it is parsed (the text is
/// never held whole: see [`scan`]).
pub fn decide_file(path: &str) -> Decision {
    match std::fs::File::open(path) {
        Ok(file) => judge(path, scan::missing(serde_json::de::IoRead::new(io::BufReader::with_capacity(4096, file)))),
        Err(error) => Decision::Unusable(format!("cannot read {path}: {error}")),
    }
}

fn judge(path: &str, found: Result<Option<Missing>, serde_json::Error>) -> Decision {
    let found = match found {
        Ok(found) => found,
        Err(error) if error.is_io() => return Decision::Unusable(format!("cannot read {path}: {error}")),
        // Every shape is judged; only a repeated key is refused (see `scan`).
        Err(error) if error.is_data() => return Decision::Unusable(format!("{path} repeats a key: {error}")),
        Err(error) => return Decision::Unusable(format!("{path} is not valid JSON: {error}")),
    };
    match found {
        None => Decision::Unusable(format!("{path} has no 'models' object or 'apis' list")),
        Some(missing) if missing.is_empty() => Decision::AsteriskHasThem,
        Some(missing) => Decision::Serve(missing),
    }
}

/// [`missing`] of a document's text, without making it a [`Value`].
///
/// Load and reload decide from Asterisk's `events.json` (some 30 KiB of
/// text, read through a 4 KiB buffer); as a `serde_json::Value` it is about
/// 200 KiB of small allocations, all alive at once. Made in the thread that
/// runs `module load` (a new remote-console thread each time, given one of
/// glibc's per-thread malloc arenas in turn), that peak grew each arena's
/// heap by some 100 KiB that glibc never trims (less than its 128 KiB trim
/// threshold is left free at the top), so Asterisk's resident memory grew
/// by ~2 MiB over the first few dozen unload/load cycles, until every arena
/// had had its turn. Here only the few fields the answer needs are kept,
/// everything else is skipped while it is parsed (`IgnoredAny`); the result
/// is the same as `missing(&serde_json::from_str(text)?)`, except that a
/// key repeated in one object is refused (a `Value` keeps the last one):
/// Asterisk writes none, and the document is then left to ARI.
mod scan {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
    use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use serde::Deserialize as DeriveDeserialize;

    use super::{Missing, CLAIM_PATH, MODELS};

    pub fn missing<'de, R: serde_json::de::Read<'de>>(read: R) -> Result<Option<Missing>, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::new(read);
        let Shaped(document) = Shaped::<Document>::deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(document.and_then(Document::missing))
    }

    #[derive(Default, DeriveDeserialize)]
    #[serde(default)]
    struct Document {
        models: Shaped<Models>,
        apis: Shaped<Vec<Shaped<Api>>>,
    }

    #[derive(Default, DeriveDeserialize)]
    #[serde(default)]
    struct Models {
        #[serde(rename = "CallBroadcast")]
        call_broadcast: Shaped<IgnoredAny>,
        #[serde(rename = "CallClaimed")]
        call_claimed: Shaped<IgnoredAny>,
        #[serde(rename = "Event")]
        event: Shaped<EventModel>,
    }

    #[derive(Default, DeriveDeserialize)]
    #[serde(default)]
    struct EventModel {
        #[serde(rename = "subTypes")]
        sub_types: Shaped<Vec<Shaped<String>>>,
    }

    #[derive(Default, DeriveDeserialize)]
    #[serde(default)]
    struct Api {
        path: Shaped<String>,
        operations: Shaped<Vec<Shaped<Operation>>>,
    }

    #[derive(Default, DeriveDeserialize)]
    #[serde(default)]
    struct Operation {
        #[serde(rename = "httpMethod")]
        http_method: Shaped<String>,
    }

    impl Document {
        fn missing(self) -> Option<Missing> {
            let (Shaped(Some(models)), Shaped(Some(apis))) = (self.models, self.apis) else { return None };
            let objects = [models.call_broadcast.0.is_some(), models.call_claimed.0.is_some()];
            let subtypes = models.event.0.and_then(|event| event.sub_types.0).map(|list| {
                MODELS.map(|name| list.iter().any(|item| item.0.as_deref() == Some(name)))
            });
            let lacks = |found: [bool; 2]| MODELS.into_iter().zip(found).filter(|(_, f)| !f).map(|(m, _)| m).collect();
            Some(Missing {
                models: lacks(objects),
                subtypes: subtypes.map(lacks).unwrap_or_default(),
                claim_operation: !apis.into_iter().flat_map(|api| api.0).any(|api| api.is_claim()),
            })
        }
    }

    impl Api {
        /// [`CLAIM_PATH`] with a POST operation.
        fn is_claim(&self) -> bool {
            self.path.0.as_deref() == Some(CLAIM_PATH)
                && self.operations.0.iter().flatten().any(|operation| {
                    operation.0.as_ref().is_some_and(|operation| operation.http_method.0.as_deref() == Some("POST"))
                })
        }
    }

    /// A value that counts only if it is of the JSON kind `T` is read
    /// from: an object for a struct (or `IgnoredAny`, which only says there
    /// is one), a list for a `Vec`, a string for a `String`. Anything else
    /// is skipped and counts as absent, as `Value::as_object` and its kin
    /// answer `None`, so an odd document is judged, not refused.
    struct Shaped<T>(Option<T>);

    impl<T> Default for Shaped<T> {
        fn default() -> Self {
            Shaped(None)
        }
    }

    /// The JSON kind each `Shaped` type is read from.
    trait Kind {
        const KIND: Json;
    }

    #[derive(PartialEq, Eq)]
    enum Json {
        Object,
        List,
        Text,
    }

    impl Kind for IgnoredAny {
        const KIND: Json = Json::Object;
    }
    impl Kind for String {
        const KIND: Json = Json::Text;
    }
    impl<T> Kind for Vec<T> {
        const KIND: Json = Json::List;
    }
    impl Kind for Models {
        const KIND: Json = Json::Object;
    }
    impl Kind for Document {
        const KIND: Json = Json::Object;
    }
    impl Kind for EventModel {
        const KIND: Json = Json::Object;
    }
    impl Kind for Api {
        const KIND: Json = Json::Object;
    }
    impl Kind for Operation {
        const KIND: Json = Json::Object;
    }

    impl<'de, T: Deserialize<'de> + Kind> Deserialize<'de> for Shaped<T> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(ShapedVisitor(PhantomData))
        }
    }

    struct ShapedVisitor<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de> + Kind> Visitor<'de> for ShapedVisitor<T> {
        type Value = Shaped<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON value")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shaped<T>, A::Error> {
            if T::KIND == Json::Object {
                return T::deserialize(MapAccessDeserializer::new(map)).map(|value| Shaped(Some(value)));
            }
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Shaped(None))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shaped<T>, A::Error> {
            if T::KIND == Json::List {
                return T::deserialize(SeqAccessDeserializer::new(seq)).map(|value| Shaped(Some(value)));
            }
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Shaped(None))
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Shaped<T>, E> {
            if T::KIND == Json::Text {
                return T::deserialize(serde::de::value::StrDeserializer::new(text)).map(|value| Shaped(Some(value)));
            }
            Ok(Shaped(None))
        }

        fn visit_bool<E>(self, _: bool) -> Result<Shaped<T>, E> {
            Ok(Shaped(None))
        }
        fn visit_i64<E>(self, _: i64) -> Result<Shaped<T>, E> {
            Ok(Shaped(None))
        }
        fn visit_u64<E>(self, _: u64) -> Result<Shaped<T>, E> {
            Ok(Shaped(None))
        }
        fn visit_f64<E>(self, _: f64) -> Result<Shaped<T>, E> {
            Ok(Shaped(None))
        }
        fn visit_unit<E>(self) -> Result<Shaped<T>, E> {
            Ok(Shaped(None))
        }
    }
}

/// The answer ARI gives, after authentication, to a method other than GET on
/// an api-docs resource (`None` for GET). ARI lists no `Allow` here.
pub fn refuse_method(method: Method, headers: Vec<(String, String)>) -> Option<Response> {
    (method != Method::Get).then(|| Response {
        status: 405,
        reason: "Method Not Allowed",
        headers,
        message: Some("Unsupported method".into()),
        close: false,
        notices: Vec::new(),
    })
}

/// A 500 `{"message": …}` for a request the handler could not answer.
pub fn internal_error() -> Response {
    Response {
        status: 500,
        reason: "Internal Server Error",
        headers: Vec::new(),
        message: Some("Cannot serve the API description".into()),
        close: false,
        notices: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of Asterisk 20.6.0's events.json, cut down.
    fn old() -> Value {
        json!({
            "apiVersion": "2.0.0",
            "swaggerVersion": "1.2",
            "basePath": "http://localhost:8088/ari",
            "resourcePath": "/api-docs/events.{format}",
            "apis": [
                {"path": "/events", "operations": [{"httpMethod": "GET", "nickname": "eventWebsocket"}]},
                {"path": "/events/user/{eventName}", "operations": [{"httpMethod": "POST", "nickname": "userEvent"}]}
            ],
            "models": {
                "Message": {"id": "Message", "subTypes": ["MissingParams", "Event"]},
                "Event": {"id": "Event", "subTypes": ["StasisStart", "StasisEnd"]},
                "StasisStart": {"id": "StasisStart", "properties": {}}
            }
        })
    }

    fn keys(value: &Value) -> Vec<String> {
        value.as_object().expect("object").keys().cloned().collect()
    }

    #[test]
    fn an_old_description_lacks_everything() {
        let missing = missing(&old()).expect("a description");
        assert_eq!(missing.models, MODELS.to_vec());
        assert_eq!(missing.subtypes, MODELS.to_vec());
        assert!(missing.claim_operation);
        assert_eq!(missing.to_string(), "the CallBroadcast and CallClaimed models, POST /events/claim");
    }

    #[test]
    fn entries_are_added_after_what_is_there() {
        let mut doc = old();
        let before = doc.clone();
        assert!(add_entries(&mut doc));
        assert_eq!(keys(&doc), keys(&before), "top-level keys and their order");
        assert_eq!(keys(&doc["models"]), ["Message", "Event", "StasisStart", "CallBroadcast", "CallClaimed"]);
        assert_eq!(
            doc["models"]["Event"]["subTypes"],
            json!(["StasisStart", "StasisEnd", "CallBroadcast", "CallClaimed"])
        );
        assert_eq!(doc["models"]["Message"], before["models"]["Message"]);
        let apis = doc["apis"].as_array().expect("apis");
        assert_eq!(apis.len(), 3);
        assert_eq!(apis[..2], before["apis"].as_array().expect("apis")[..]);
        assert_eq!(apis[2]["path"], CLAIM_PATH);
        assert_eq!(missing(&doc), Some(Missing::default()));
        // Everything else is as it was.
        for key in ["apiVersion", "swaggerVersion", "basePath", "resourcePath"] {
            assert_eq!(doc[key], before[key], "{key}");
        }
    }

    #[test]
    fn adding_twice_changes_nothing() {
        let mut doc = old();
        add_entries(&mut doc);
        let once = doc.clone();
        assert!(add_entries(&mut doc));
        assert_eq!(serde_json::to_string(&doc).unwrap(), serde_json::to_string(&once).unwrap());
    }

    /// Field names and types as ARI's own description of 22.10 has them; the
    /// shape swagger-client (ari-client) reads.
    #[test]
    fn the_models_and_the_operation_have_ari_s_shape() {
        let mut doc = old();
        add_entries(&mut doc);
        let types = |model: &str| -> Vec<(String, String, bool)> {
            let model = &doc["models"][model];
            assert!(model["description"].is_string());
            model["properties"]
                .as_object()
                .expect("properties")
                .iter()
                .map(|(name, p)| {
                    assert!(p["description"].is_string(), "{name}");
                    (name.clone(), p["type"].as_str().unwrap().to_owned(), p["required"].as_bool().unwrap())
                })
                .collect()
        };
        assert_eq!(doc["models"]["CallBroadcast"]["id"], "CallBroadcast");
        assert_eq!(doc["models"]["CallClaimed"]["id"], "CallClaimed");
        let owned = |list: &[(&str, &str, bool)]| -> Vec<(String, String, bool)> {
            list.iter().map(|(n, t, r)| ((*n).to_owned(), (*t).to_owned(), *r)).collect()
        };
        assert_eq!(
            types("CallBroadcast"),
            owned(&[("channel", "Channel", true), ("caller", "string", false), ("called", "string", false)])
        );
        assert_eq!(types("CallClaimed"), owned(&[("channel", "Channel", true), ("winner_app", "string", true)]));

        let api = doc["apis"].as_array().unwrap().iter().find(|api| api["path"] == CLAIM_PATH).unwrap().clone();
        assert!(api["description"].is_string());
        let operation = &api["operations"][0];
        assert_eq!(operation["httpMethod"], "POST");
        assert_eq!(operation["nickname"], CLAIM_NICKNAME);
        assert_eq!(operation["responseClass"], "void");
        let parameters: Vec<(&str, &str, bool, &str)> = operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                assert_eq!(p["allowMultiple"], false);
                assert!(p["description"].is_string());
                (
                    p["name"].as_str().unwrap(),
                    p["paramType"].as_str().unwrap(),
                    p["required"].as_bool().unwrap(),
                    p["dataType"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(parameters, [("channelId", "query", true, "string"), ("application", "query", true, "string")]);
        let codes: Vec<u64> =
            operation["errorResponses"].as_array().unwrap().iter().map(|e| e["code"].as_u64().unwrap()).collect();
        assert_eq!(codes, [400, 404, 409]);
        assert!(operation["errorResponses"].as_array().unwrap().iter().all(|e| e["reason"].is_string()));
    }

    #[test]
    fn partial_descriptions_get_only_what_they_lack() {
        let mut doc = old();
        doc["models"]["CallClaimed"] = json!({"id": "CallClaimed", "properties": {"mine": {"type": "string"}}});
        doc["models"]["Event"]["subTypes"] = json!(["CallClaimed"]);
        doc["apis"].as_array_mut().unwrap().push(json!({"path": CLAIM_PATH, "operations": [{"httpMethod": "DELETE"}]}));
        let found = missing(&doc).unwrap();
        assert_eq!(found.models, ["CallBroadcast"]);
        assert_eq!(found.subtypes, ["CallBroadcast"]);
        assert!(found.claim_operation);
        assert_eq!(found.to_string(), "the CallBroadcast model, POST /events/claim");
        add_entries(&mut doc);
        assert_eq!(doc["models"]["CallClaimed"]["properties"]["mine"]["type"], "string", "kept as it was");
        assert_eq!(doc["models"]["Event"]["subTypes"], json!(["CallClaimed", "CallBroadcast"]));
        let claims: Vec<&Value> =
            doc["apis"].as_array().unwrap().iter().filter(|api| api["path"] == CLAIM_PATH).collect();
        assert_eq!(claims.len(), 1, "no second /events/claim resource");
        let methods: Vec<&str> =
            claims[0]["operations"].as_array().unwrap().iter().map(|o| o["httpMethod"].as_str().unwrap()).collect();
        assert_eq!(methods, ["DELETE", "POST"]);
    }

    #[test]
    fn no_event_model_means_no_subtypes_to_add() {
        let mut doc = old();
        doc["models"].as_object_mut().unwrap().shift_remove("Event");
        let found = missing(&doc).unwrap();
        assert!(found.subtypes.is_empty());
        assert!(add_entries(&mut doc));
        assert!(doc["models"]["CallBroadcast"].is_object());
    }

    #[test]
    fn not_a_description() {
        for text in ["[1,2]", "{}", r#"{"models": [], "apis": []}"#, r#"{"models": {}, "apis": {}}"#, "7"] {
            let mut doc: Value = serde_json::from_str(text).unwrap();
            assert_eq!(missing(&doc), None, "{text}");
            assert!(!add_entries(&mut doc), "{text}");
            assert_eq!(doc, serde_json::from_str::<Value>(text).unwrap(), "{text} untouched");
            assert_eq!(complete(text), None, "{text}");
        }
        assert_eq!(complete("{\"models\": "), None);
    }

    /// `decide` scans the text; `add_entries` looks at the `Value`: the same
    /// answer for every shape; a key repeated in one object is refused.
    #[test]
    fn scanning_the_text_agrees_with_the_value() {
        let mut complete_doc = old();
        add_entries(&mut complete_doc);
        let mut partial = old();
        partial["models"]["CallClaimed"] = json!({"id": "CallClaimed"});
        partial["models"]["Event"]["subTypes"] = json!(["CallClaimed", 7, null, {"CallBroadcast": 1}]);
        partial["apis"].as_array_mut().unwrap().push(json!({"path": CLAIM_PATH, "operations": [{"httpMethod": "GET"}]}));
        let mut texts: Vec<String> = [old(), complete_doc, partial].iter().map(Value::to_string).collect();
        texts.extend(
            [
                "[1,2]",
                "{}",
                "7",
                "\"models\"",
                "null",
                r#"{"models": [], "apis": []}"#,
                r#"{"models": {}, "apis": {}}"#,
                r#"{"models": {}, "apis": []}"#,
                r#"{"models": {"CallBroadcast": [], "CallClaimed": "x", "Event": []}, "apis": [1, "a", null]}"#,
                r#"{"models": {"Event": {"subTypes": "CallBroadcast"}}, "apis": [{"path": "/events/claim"}]}"#,
                r#"{"models": {}, "apis": [{"path": "\/events\/claim", "operations": [{"httpMethod": "P\u004fST"}]}]}"#,
                r#"{"models": {}, "apis": [{"path": "/events/claim", "operations": {"httpMethod": "POST"}}]}"#,
                r#"{"apis": [{"path": "/events/claim", "operations": [{}, {"httpMethod": "POST", "x": [[{}]]}]}], "models": {"CallClaimed": {"a": [1.5, -2, true]}}}"#,
            ]
            .map(str::to_owned),
        );
        for text in &texts {
            let doc: Value = serde_json::from_str(text).unwrap();
            assert_eq!(scan::missing(serde_json::de::StrRead::new(text)).unwrap(), missing(&doc), "{text}");
            let read = serde_json::de::IoRead::new(io::BufReader::with_capacity(3, text.as_bytes()));
            assert_eq!(scan::missing(read).unwrap(), missing(&doc), "{text} read through a buffer");
        }
        for bad in ["{", "{\"models\": }", "[1,]", "{} {}", ""] {
            assert!(scan::missing(serde_json::de::StrRead::new(bad)).is_err(), "{bad}");
        }
        for repeated in [
            r#"{"models": {"Event": {"subTypes": ["CallBroadcast"], "subTypes": []}}, "apis": []}"#,
            r#"{"models": {"CallBroadcast": {}, "CallBroadcast": 1}, "apis": []}"#,
            r#"{"models": {}, "models": {"CallClaimed": {}}, "apis": []}"#,
            r#"{"models": {}, "apis": [{"operations": [{"httpMethod": "POST"}], "path": "/events/claim", "path": "/x"}]}"#,
            r#"{"models": {}, "apis": [{"path": "/events/claim", "operations": [{"httpMethod": "POST", "httpMethod": "GET"}]}]}"#,
            r#"{"x": {"x": 1, "x": 2}, "models": {}, "apis": []}"#,
        ] {
            // Keys no one reads may repeat (they are skipped, as in a Value).
            let skipped = repeated.starts_with(r#"{"x""#);
            let scanned = scan::missing(serde_json::de::StrRead::new(repeated));
            if skipped {
                let doc: Value = serde_json::from_str(repeated).unwrap();
                assert_eq!(scanned.unwrap(), missing(&doc), "{repeated}");
            } else {
                assert!(scanned.is_err_and(|error| error.is_data() && error.to_string().contains("duplicate")), "{repeated}");
                let decision = decide("events.json", Ok(repeated));
                assert!(matches!(&decision, Decision::Unusable(why) if why.contains("repeats a key")), "{decision}");
            }
        }
    }

    #[test]
    fn complete_keeps_the_document_s_order_and_text() {
        let text = r#"{"z":1,"models":{"Event":{"id":"Event","subTypes":[]}},"a":"é/\u0001","apis":[]}"#;
        let out = complete(text).unwrap();
        assert!(
            out.starts_with(
                r#"{"z":1,"models":{"Event":{"id":"Event","subTypes":["CallBroadcast","CallClaimed"]},"CallBroadcast":"#
            ),
            "{out}"
        );
        assert!(out.contains(r#""a":"é/\u0001","apis":[{"path":"/events/claim""#), "{out}");
    }

    #[test]
    fn decisions() {
        let path = "/usr/share/asterisk/rest-api/events.json";
        let old_text = old().to_string();
        let decision = decide(path, Ok(&old_text));
        assert!(decision.serves());
        assert_eq!(
            decision.to_string(),
            "Asterisk's events.json lacks the CallBroadcast and CallClaimed models, POST /events/claim; \
             this module serves GET /ari/api-docs/events.json with them added"
        );
        let mut new = old();
        add_entries(&mut new);
        let decision = decide(path, Ok(&new.to_string()));
        assert_eq!(decision, Decision::AsteriskHasThem);
        assert!(!decision.serves() && !decision.warn());
        assert!(decision.to_string().contains("already describes CallBroadcast, CallClaimed and POST /events/claim"));

        let decision = decide(path, Err("No such file or directory".into()));
        assert!(!decision.serves() && decision.warn());
        assert!(decision.to_string().starts_with(&format!("cannot read {path}: No such file or directory;")));
        assert!(matches!(decide(path, Ok("{")), Decision::Unusable(why) if why.contains("not valid JSON")));
        assert!(matches!(decide(path, Ok("{}")), Decision::Unusable(why) if why.contains("no 'models'")));

        let dir = std::env::temp_dir().join(format!("api-docs-decide-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(FILE_NAME);
        let file = file.to_str().unwrap();
        std::fs::write(file, &old_text).unwrap();
        assert_eq!(decide_file(file), decide(path, Ok(&old_text)));
        std::fs::write(file, new.to_string()).unwrap();
        assert_eq!(decide_file(file), Decision::AsteriskHasThem);
        std::fs::write(file, "{").unwrap();
        assert!(matches!(decide_file(file), Decision::Unusable(why) if why.contains("not valid JSON")));
        let gone = dir.join("gone.json");
        let gone = gone.to_str().unwrap();
        assert!(matches!(decide_file(gone), Decision::Unusable(why) if why.starts_with(&format!("cannot read {gone}: "))));
        assert!(matches!(decide_file(dir.to_str().unwrap()), Decision::Unusable(why) if why.starts_with("cannot read")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn methods_after_admission() {
        assert_eq!(refuse_method(Method::Get, Vec::new()), None);
        for method in [Method::Post, Method::Head, Method::Put, Method::Delete, Method::Options, Method::Unknown] {
            let headers = vec![("Access-Control-Allow-Origin".to_owned(), "http://a.example".to_owned())];
            let response = refuse_method(method, headers.clone()).expect("refused");
            assert_eq!((response.status, response.reason), (405, "Method Not Allowed"), "{method:?}");
            assert_eq!(response.message.as_deref(), Some("Unsupported method"));
            assert_eq!(response.headers, headers, "no Allow header, CORS kept");
        }
    }
}
