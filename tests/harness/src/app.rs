//! ARI WebSocket application client: a background thread stores every event
//! with the instant it was read, and writes what the test sends over the
//! socket (REST requests, Asterisk 20.14+, 21.9+, 22.4+, 23+).

use crate::http::{encode, AriHttp};
use serde_json::Value;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

/// How long `connect` waits for the application to be registered.
const REGISTER_DEADLINE: Duration = Duration::from_secs(10);
/// How long `Drop` waits for Asterisk to forget the application.
const UNREGISTER_DEADLINE: Duration = Duration::from_secs(2);
/// Read timeout of the socket, i.e. how fast the reader notices a stop
/// request or a message to send.
const POLL: Duration = Duration::from_millis(50);
/// How long `rest` waits for the `RESTResponse`.
const REST_DEADLINE: Duration = Duration::from_secs(10);

struct Shared {
    events: Mutex<Vec<(Instant, Value)>>,
    cond: Condvar,
    connected: AtomicBool,
    stop: AtomicBool,
}

/// A connected ARI WebSocket application; closes the socket and joins its reader on drop.
pub struct AriApp {
    name: String,
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
    http: AriHttp,
    /// Text messages for the reader thread, which owns the socket, to write.
    outgoing: Mutex<Sender<String>>,
    /// Asterisk connected to us (`type=outbound_websocket`): it keeps the
    /// applications registered after the socket closes, so `Drop` does not wait for that.
    outbound: bool,
}

/// A `RESTResponse` read from the application's WebSocket.
#[derive(Clone, Debug)]
pub struct RestResponse {
    /// `status_code`.
    pub status: u16,
    /// `reason_phrase`.
    pub reason: String,
    /// `message_body` parsed as JSON (`Value::Null` when absent or not JSON).
    pub body: Value,
    /// The whole message, as Asterisk sent it.
    pub raw: Value,
}

impl RestResponse {
    /// `message` of the body (ARI's error text), or "".
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or("")
    }
}

impl AriApp {
    pub(crate) fn connect(port: u16, name: &str, query: &str, http: AriHttp) -> AriApp {
        AriApp::try_connect(port, name, query, http).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like `connect`, but a refused upgrade (e.g. no `/ari/events` route)
    /// is returned as `Err` with what Asterisk answered.
    pub(crate) fn try_connect(port: u16, name: &str, query: &str, http: AriHttp) -> Result<AriApp, String> {
        AriApp::try_connect_with_headers(port, name, query, &[], http)
    }

    /// Like `try_connect`, with extra headers on the upgrade request (e.g. `Authorization`).
    pub(crate) fn try_connect_with_headers(
        port: u16,
        name: &str,
        query: &str,
        headers: &[(&str, &str)],
        http: AriHttp,
    ) -> Result<AriApp, String> {
        use tungstenite::client::IntoClientRequest;
        let url = format!(
            "ws://127.0.0.1:{port}/ari/events?app={}&{query}",
            encode(name)
        );
        let mut request = url.as_str().into_client_request().map_err(|e| format!("request for app {name}: {e}"))?;
        for (header, value) in headers {
            let header = tungstenite::http::HeaderName::from_bytes(header.as_bytes()).map_err(|e| format!("{header}: {e}"))?;
            let value = tungstenite::http::HeaderValue::from_str(value).map_err(|e| format!("{value}: {e}"))?;
            request.headers_mut().append(header, value);
        }
        let stream = TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| format!("connect app {name}: {e}"))?;
        stream.set_nodelay(true).ok();
        let (ws, resp) = match tungstenite::client::client(request, stream) {
            Ok(done) => done,
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
                let body = resp.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                return Err(format!("WebSocket upgrade for app {name} refused: {} {body}", resp.status().as_u16()));
            }
            Err(e) => return Err(format!("WebSocket handshake for app {name}: {e}")),
        };
        if resp.status().as_u16() != 101 {
            return Err(format!("WebSocket upgrade for app {name}: {}", resp.status()));
        }
        let app = AriApp::start(ws, name, http, false);
        app.wait_registered();
        Ok(app)
    }

    /// An application on a socket Asterisk opened to us (an outbound
    /// WebSocket, see [`crate::OutboundServer`]); returns once Asterisk lists
    /// every name of `name` (comma-separated) as registered.
    pub(crate) fn adopt(ws: WebSocket<TcpStream>, name: &str, http: AriHttp) -> AriApp {
        let app = AriApp::start(ws, name, http, true);
        app.wait_registered();
        app
    }

    fn start(ws: WebSocket<TcpStream>, name: &str, http: AriHttp, outbound: bool) -> AriApp {
        ws.get_ref()
            .set_read_timeout(Some(POLL))
            .expect("set read timeout");
        let (outgoing, to_send) = channel();
        let shared = Arc::new(Shared {
            events: Mutex::new(Vec::new()),
            cond: Condvar::new(),
            connected: AtomicBool::new(true),
            stop: AtomicBool::new(false),
        });
        let s2 = shared.clone();
        let reader = std::thread::Builder::new()
            .name(format!("ari-app-{name}"))
            .spawn(move || read_loop(ws, s2, to_send))
            .expect("start app reader thread");
        AriApp {
            name: name.into(),
            shared,
            reader: Some(reader),
            http,
            outgoing: Mutex::new(outgoing),
            outbound,
        }
    }

    /// Waits until Asterisk lists every name of a comma-separated list.
    fn wait_registered(&self) {
        let app = self;
        let name = self.name.as_str();
        let deadline = Instant::now() + REGISTER_DEADLINE;
        for n in name.split(',') {
            loop {
                let r = app.http.get(&format!("/applications/{}", encode(n)));
                if r.status == 200 {
                    break;
                }
                if Instant::now() > deadline {
                    panic!(
                        "ARI application {n} not registered after {REGISTER_DEADLINE:?}: {} {}",
                        r.status, r.body
                    );
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// The application name (as given to `connect_app`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the WebSocket is still open.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::SeqCst)
    }

    /// First event so far or arriving within `timeout` (past events included) that matches `pred`.
    pub fn wait_for(
        &self,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<(Instant, Value)> {
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        let mut g = self.shared.events.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(hit) = g[seen..].iter().find(|(_, v)| pred(v)) {
                return Some(hit.clone());
            }
            seen = g.len();
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            g = self
                .shared
                .cond
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// First event of that `type` (past events included) within `timeout`.
    pub fn wait_for_type(&self, event_type: &str, timeout: Duration) -> Option<(Instant, Value)> {
        self.wait_for(|v| v["type"] == event_type, timeout)
    }

    /// First event of that `type` about that channel (`channel.id`) within `timeout`.
    pub fn wait_for_channel_event(
        &self,
        event_type: &str,
        channel_id: &str,
        timeout: Duration,
    ) -> Option<(Instant, Value)> {
        self.wait_for(
            |v| v["type"] == event_type && v["channel"]["id"] == channel_id,
            timeout,
        )
    }

    /// Snapshot of all events received so far, in arrival order.
    pub fn events(&self) -> Vec<(Instant, Value)> {
        self.shared
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Number of events of that `type` received so far.
    pub fn count_type(&self, event_type: &str) -> usize {
        self.shared
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, v)| v["type"] == event_type)
            .count()
    }

    /// Removes and returns every event stored so far, in arrival order; when
    /// there is none yet, waits up to `timeout` for the next. For consumers
    /// that handle events as a stream (each event once, no rescanning); do not
    /// mix with `wait_for` on the same application, which sees only what is
    /// still stored.
    pub fn take_events(&self, timeout: Duration) -> Vec<(Instant, Value)> {
        let mut g = self.shared.events.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_empty() && self.is_connected() {
            g = self
                .shared
                .cond
                .wait_timeout(g, timeout)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        std::mem::take(&mut *g)
    }

    /// The events that reached this application before a barrier: a user
    /// event (`POST /events/user/{name}?application=…`) sent now and awaited.
    /// Asterisk writes an application's events to its WebSocket in the order
    /// it sends them, and `stasis_app_send` (which sends CallBroadcast and
    /// CallClaimed) has written its event before it returns, while the user
    /// event is only published when the request is made. So whatever was sent
    /// to this application before this call is in the list, and "nothing
    /// arrived" is decided without guessing how long to wait. With a
    /// comma-separated name, the barrier goes to the first application.
    pub fn events_before_barrier(&self, timeout: Duration) -> Vec<(Instant, Value)> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let event_name = format!("barrier-{}", NEXT.fetch_add(1, Ordering::SeqCst));
        let app = self.name.split(',').next().unwrap_or(&self.name);
        let path = format!("/events/user/{}?application={}", encode(&event_name), encode(app));
        let r = self.http.post(&path, None);
        assert_eq!(r.status, 204, "barrier user event to {app}: {} {}", r.status, r.body);
        let is_barrier = |v: &Value| v["type"] == "ChannelUserevent" && v["eventname"] == event_name.as_str();
        if self.wait_for(is_barrier, timeout).is_none() {
            panic!("barrier user event {event_name} never reached {app} within {timeout:?}");
        }
        let events = self.events();
        let at = events.iter().position(|(_, v)| is_barrier(v)).unwrap_or(events.len());
        events[..at].to_vec()
    }

    /// Claims `channel_id` for this application.
    pub fn claim(&self, channel_id: &str) -> crate::Response {
        self.http.claim(channel_id, &self.name)
    }

    /// Writes one text message on the WebSocket (as is: it need not be JSON).
    /// Panics if the socket is closed.
    pub fn send_text(&self, text: &str) {
        assert!(self.is_connected(), "{}: WebSocket closed, cannot send {text}", self.name);
        self.outgoing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(text.to_owned())
            .unwrap_or_else(|_| panic!("{}: reader thread gone, cannot send {text}", self.name));
    }

    /// Sends a REST request over the WebSocket (`{"type":"RESTRequest",…}`,
    /// what ARI reads on its events WebSocket from 20.14, 21.9, 22.4 and 23.0)
    /// with a fresh `request_id` and `transaction_id`; `uri` is relative to
    /// `/ari` without a leading slash and may carry a query string
    /// (`events/claim?channelId=…`). Waits for the `RESTResponse` with that
    /// `request_id`; `None` if none came within `timeout`.
    pub fn try_rest(&self, method: &str, uri: &str, body: Option<&Value>, timeout: Duration) -> Option<RestResponse> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let id = format!("rq-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let mut request = serde_json::json!({
            "type": "RESTRequest",
            "request_id": id,
            "transaction_id": format!("tx-{id}"),
            "method": method,
            "uri": uri,
        });
        if let Some(body) = body {
            request["content_type"] = "application/json".into();
            request["message_body"] = body.to_string().into();
        }
        self.send_text(&request.to_string());
        let (_, raw) = self.wait_for(|v| v["type"] == "RESTResponse" && v["request_id"] == id.as_str(), timeout)?;
        let body = raw["message_body"]
            .as_str()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or(Value::Null);
        Some(RestResponse {
            status: raw["status_code"].as_u64().unwrap_or(0) as u16,
            reason: raw["reason_phrase"].as_str().unwrap_or("").to_owned(),
            body,
            raw,
        })
    }

    /// Like [`AriApp::try_rest`], panicking when no answer comes within 10 s.
    pub fn rest(&self, method: &str, uri: &str, body: Option<&Value>) -> RestResponse {
        self.try_rest(method, uri, body, REST_DEADLINE).unwrap_or_else(|| {
            panic!("{}: no RESTResponse to {method} {uri} within {REST_DEADLINE:?}", self.name)
        })
    }

    /// Claims `channel_id` for this application over its own WebSocket:
    /// `POST events/claim?channelId=…&application=…` as a REST request.
    pub fn claim_over_ws(&self, channel_id: &str) -> RestResponse {
        let app = self.name.split(',').next().unwrap_or(&self.name);
        self.rest("POST", &format!("events/claim?channelId={}&application={}", encode(channel_id), encode(app)), None)
    }
}

fn read_loop(mut ws: WebSocket<TcpStream>, shared: Arc<Shared>, to_send: Receiver<String>) {
    loop {
        while let Ok(text) = to_send.try_recv() {
            if ws.send(Message::text(text)).is_err() {
                break;
            }
        }
        if shared.stop.load(Ordering::SeqCst) {
            let _ = ws.close(None);
            let _ = ws.flush();
            // Drain until Asterisk acknowledges the close (bounded).
            let until = Instant::now() + Duration::from_millis(500);
            while Instant::now() < until {
                match ws.read() {
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {}
                    Err(_) => break,
                }
            }
            break;
        }
        match ws.read() {
            Ok(Message::Text(t)) => {
                let at = Instant::now();
                let v: Value = serde_json::from_str(t.as_str())
                    .unwrap_or_else(|_| Value::String(t.as_str().to_string()));
                shared
                    .events
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((at, v));
                shared.cond.notify_all();
            }
            Ok(Message::Close(_)) => {
                let _ = ws.flush();
                break;
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {}
            Err(_) => break,
        }
    }
    shared.connected.store(false, Ordering::SeqCst);
    shared.cond.notify_all();
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

impl Drop for AriApp {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
        // Best effort: wait until Asterisk forgets the application, so later
        // calls are not offered to it. Skipped when Asterisk is gone.
        if self.outbound {
            return;
        }
        let deadline = Instant::now() + UNREGISTER_DEADLINE;
        for n in self.name.split(',') {
            while Instant::now() < deadline {
                let r = self.http.get(&format!("/applications/{}", encode(n)));
                if r.status != 200 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}
