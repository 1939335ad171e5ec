//! ARI WebSocket application client: a background thread stores every event
//! with the instant it was read.

use crate::http::{encode, AriHttp};
use serde_json::Value;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

/// How long `connect` waits for the application to be registered.
const REGISTER_DEADLINE: Duration = Duration::from_secs(10);
/// How long `Drop` waits for Asterisk to forget the application.
const UNREGISTER_DEADLINE: Duration = Duration::from_secs(2);
/// Read timeout of the socket, i.e. how fast the reader notices a stop request.
const POLL: Duration = Duration::from_millis(50);

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
}

impl AriApp {
    pub(crate) fn connect(port: u16, name: &str, query: &str, http: AriHttp) -> AriApp {
        let url = format!(
            "ws://127.0.0.1:{port}/ari/events?app={}&{query}",
            encode(name)
        );
        let stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connect app {name}: {e}"));
        stream.set_nodelay(true).ok();
        let (ws, resp) = tungstenite::client::client(url.as_str(), stream)
            .unwrap_or_else(|e| panic!("WebSocket handshake for app {name}: {e}"));
        assert_eq!(
            resp.status().as_u16(),
            101,
            "WebSocket upgrade for app {name}"
        );
        ws.get_ref()
            .set_read_timeout(Some(POLL))
            .expect("set read timeout");
        let shared = Arc::new(Shared {
            events: Mutex::new(Vec::new()),
            cond: Condvar::new(),
            connected: AtomicBool::new(true),
            stop: AtomicBool::new(false),
        });
        let s2 = shared.clone();
        let reader = std::thread::Builder::new()
            .name(format!("ari-app-{name}"))
            .spawn(move || read_loop(ws, s2))
            .expect("start app reader thread");
        let app = AriApp {
            name: name.into(),
            shared,
            reader: Some(reader),
            http,
        };
        // Registered (every name of a comma-separated list) before we return.
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
        app
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
}

fn read_loop(mut ws: WebSocket<TcpStream>, shared: Arc<Shared>) {
    loop {
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
