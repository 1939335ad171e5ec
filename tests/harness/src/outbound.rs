//! The other end of an ARI outbound WebSocket (ari.conf `type =
//! outbound_websocket`, Asterisk 20.15/22.5/23.0 on): a WebSocket server
//! that Asterisk connects to and sends an application's events over. It can
//! go away (connection closed, port closed) and come back on the same port:
//! Asterisk then queues the application's events while it reconnects and
//! replays them once it is back.

use serde_json::Value;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::{Message, WebSocket};

/// How often the server thread looks at its flags.
const POLL: Duration = Duration::from_millis(20);

#[derive(Default)]
struct Shared {
    events: Mutex<Vec<(Instant, Value)>>,
    cond: Condvar,
    /// Whether to accept Asterisk's connection (false: port closed).
    present: AtomicBool,
    /// Connections accepted so far.
    connections: AtomicUsize,
    /// Whether a connection is open now.
    connected: AtomicBool,
    stop: AtomicBool,
}

/// A WebSocket server for one outbound connection; stops its thread on drop.
pub struct OutboundServer {
    address: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl OutboundServer {
    /// Listens on a free port of 127.0.0.1.
    pub fn listen() -> OutboundServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the outbound WebSocket server");
        let address = listener.local_addr().expect("its address");
        let shared = Arc::new(Shared::default());
        shared.present.store(true, Ordering::SeqCst);
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name("ari-outbound-server".into())
            .spawn(move || serve(listener, address, serving))
            .expect("start the outbound WebSocket server");
        OutboundServer { address, shared, thread: Some(thread) }
    }

    /// `websocket_client.conf` for a persistent connection `id` to this server.
    pub fn websocket_client_conf(&self, id: &str) -> String {
        format!(
            "[{id}]\ntype = websocket_client\nconnection_type = persistent\nuri = ws://{}/\nprotocols = ari\n\
             connection_timeout = 500\nreconnect_interval = 100\n",
            self.address
        )
    }

    /// Connections Asterisk has made so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Whether a connection is open now.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::SeqCst)
    }

    /// Waits until Asterisk has made its `n`th connection and it is open.
    pub fn wait_connection(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !(self.connections() >= n && self.is_connected()) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(POLL);
        }
        true
    }

    /// Closes the connection and the port: Asterisk's reconnection attempts
    /// are refused until [`OutboundServer::come_back`].
    pub fn go_away(&self) {
        self.shared.present.store(false, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.is_connected() {
            assert!(Instant::now() < deadline, "the outbound connection did not close");
            std::thread::sleep(POLL);
        }
    }

    /// Listens again on the same port.
    pub fn come_back(&self) {
        self.shared.present.store(true, Ordering::SeqCst);
    }

    /// Every event received so far (over every connection), in order.
    pub fn events(&self) -> Vec<(Instant, Value)> {
        self.shared.events.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// First event (past ones included) of that `type` about that channel within `timeout`.
    pub fn wait_for_channel_event(&self, event_type: &str, channel_id: &str, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        let mut events = self.shared.events.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some((_, hit)) =
                events.iter().find(|(_, v)| v["type"] == event_type && v["channel"]["id"] == channel_id)
            {
                return Some(hit.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            events = self.shared.cond.wait_timeout(events, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

impl Drop for OutboundServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: TcpListener, address: SocketAddr, shared: Arc<Shared>) {
    let mut listener = Some(listener);
    while !shared.stop.load(Ordering::SeqCst) {
        if !shared.present.load(Ordering::SeqCst) {
            // Closed: connection attempts are refused.
            listener = None;
            std::thread::sleep(POLL);
            continue;
        }
        // std sets SO_REUSEADDR, so the same port binds again at once.
        if listener.is_none() {
            listener = TcpListener::bind(address).ok();
        }
        let Some(open) = listener.as_ref() else {
            std::thread::sleep(POLL);
            continue;
        };
        open.set_nonblocking(true).expect("non-blocking listener");
        match open.accept() {
            Ok((stream, _)) => {
                if let Some(ws) = handshake(stream) {
                    shared.connections.fetch_add(1, Ordering::SeqCst);
                    shared.connected.store(true, Ordering::SeqCst);
                    read_until_away(ws, &shared);
                    shared.connected.store(false, Ordering::SeqCst);
                }
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// The server side of the WebSocket handshake, answering with the `ari`
/// protocol Asterisk asks for.
fn handshake(stream: TcpStream) -> Option<WebSocket<TcpStream>> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let ws = tungstenite::accept_hdr(stream, with_ari_protocol).ok()?;
    ws.get_ref().set_read_timeout(Some(POLL)).ok()?;
    Some(ws)
}

// The error type is tungstenite's, which the callback must return.
#[allow(clippy::result_large_err)]
fn with_ari_protocol(_: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    response.headers_mut().insert("Sec-WebSocket-Protocol", "ari".parse().expect("header value"));
    Ok(response)
}

fn read_until_away(mut ws: WebSocket<TcpStream>, shared: &Shared) {
    loop {
        if !shared.present.load(Ordering::SeqCst) || shared.stop.load(Ordering::SeqCst) {
            // Gone without a goodbye, as a crashed or unplugged server goes.
            return;
        }
        match ws.read() {
            Ok(Message::Text(text)) => {
                let value: Value = serde_json::from_str(text.as_str())
                    .unwrap_or_else(|_| Value::String(text.as_str().to_string()));
                shared.events.lock().unwrap_or_else(|e| e.into_inner()).push((Instant::now(), value));
                shared.cond.notify_all();
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}
