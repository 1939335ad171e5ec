//! The server end of ARI's outbound WebSockets (`ari.conf`
//! `type=outbound_websocket` with a `websocket_client.conf` connection,
//! Asterisk 20.15+, 21.10+, 22.5+, 23+): Asterisk connects to the
//! application, which then reads events and sends REST requests over that
//! one connection.

use crate::app::AriApp;
use crate::http::AriHttp;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tungstenite::handshake::server::{Request, Response};
use tungstenite::WebSocket;

/// How long the acceptor waits for a connected client's upgrade request.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);

struct Slot {
    /// The newest upgraded connection not yet taken.
    socket: Mutex<Option<WebSocket<TcpStream>>>,
    cond: Condvar,
    stop: AtomicBool,
    /// False while the server is away: its port is closed.
    present: AtomicBool,
}

/// A WebSocket server on 127.0.0.1 (a free port) for Asterisk to connect
/// to. Connections are upgraded as soon as they arrive (Asterisk's client
/// gives up on a server that does not answer within its
/// `connection_timeout`), and kept until [`OutboundServer::accept`] takes one.
pub struct OutboundServer {
    port: u16,
    slot: Arc<Slot>,
    acceptor: Option<JoinHandle<()>>,
}

impl OutboundServer {
    /// Listens on a free port of 127.0.0.1.
    pub fn bind() -> OutboundServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the outbound WebSocket server");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let port = listener.local_addr().expect("listener address").port();
        let slot = Arc::new(Slot {
            socket: Mutex::new(None),
            cond: Condvar::new(),
            stop: AtomicBool::new(false),
            present: AtomicBool::new(true),
        });
        let shared = slot.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("outbound-ws-{port}"))
            .spawn(move || accept_loop(listener, shared))
            .expect("start the acceptor thread");
        OutboundServer { port, slot, acceptor: Some(acceptor) }
    }

    /// The port Asterisk must connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ws://127.0.0.1:PORT`, for `websocket_client.conf`'s `uri`.
    pub fn uri(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// Waits up to `timeout` for Asterisk's connection and returns it as the
    /// application `apps` (the section's `apps`, comma-separated), once ARI
    /// lists them. `http` reaches the same Asterisk (registration check, barriers).
    pub fn accept(&self, apps: &str, http: AriHttp, timeout: Duration) -> AriApp {
        let deadline = Instant::now() + timeout;
        let mut socket = self.slot.socket.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(ws) = socket.take() {
                drop(socket);
                return AriApp::adopt(ws, apps, http);
            }
            let now = Instant::now();
            assert!(now < deadline, "Asterisk did not connect to {} within {timeout:?}", self.uri());
            socket = self.slot.cond.wait_timeout(socket, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

impl OutboundServer {
    /// Closes the port, as a server that crashed or was unplugged: Asterisk's
    /// reconnection attempts are refused until [`OutboundServer::come_back`].
    /// (A connection already taken is the caller's to drop.)
    pub fn go_away(&self) {
        self.slot.present.store(false, Ordering::SeqCst);
        drop(self.slot.socket.lock().unwrap_or_else(|e| e.into_inner()).take());
    }

    /// Listens again on the same port.
    pub fn come_back(&self) {
        self.slot.present.store(true, Ordering::SeqCst);
    }
}

impl Drop for OutboundServer {
    fn drop(&mut self) {
        self.slot.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: TcpListener, slot: Arc<Slot>) {
    let address = listener.local_addr().expect("listener address");
    let mut listener = Some(listener);
    while !slot.stop.load(Ordering::SeqCst) {
        if !slot.present.load(Ordering::SeqCst) {
            // Away: the port is closed, connection attempts are refused.
            listener = None;
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        // std sets SO_REUSEADDR, so the same port binds again at once.
        if listener.is_none() {
            listener = TcpListener::bind(address).ok();
            if let Some(open) = &listener {
                open.set_nonblocking(true).expect("non-blocking listener");
            }
        }
        let Some(open) = listener.as_ref() else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        match open.accept() {
            Ok((stream, _)) => {
                if let Some(ws) = upgrade(stream) {
                    *slot.socket.lock().unwrap_or_else(|e| e.into_inner()) = Some(ws);
                    slot.cond.notify_all();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Server side of the WebSocket handshake; echoes the subprotocol `ari`
/// when the client offers it (Asterisk's client refuses a server that does
/// not). `None` when the client gave up.
fn upgrade(stream: TcpStream) -> Option<WebSocket<TcpStream>> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(HANDSHAKE_DEADLINE)).ok()?;
    stream.set_nodelay(true).ok();
    let answer = |request: &Request, mut response: Response| {
        let offered = request
            .headers()
            .get_all("Sec-WebSocket-Protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == "ari");
        if offered {
            response.headers_mut().insert("Sec-WebSocket-Protocol", "ari".parse().expect("header value"));
        }
        Ok(response)
    };
    tungstenite::accept_hdr(stream, answer).ok()
}
