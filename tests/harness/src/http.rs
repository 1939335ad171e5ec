//! Blocking ARI HTTP client (ureq 3, pooled keep-alive connections).

use serde_json::Value;
use std::io::Read;
use std::time::Duration;

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    /// HTTP Basic with user and password.
    User(String, String),
    /// `api_key=` query parameter, `user:password`.
    ApiKey(String),
    /// No credentials.
    None,
}

impl Auth {
    /// The default credentials, Basic `test`/`test`.
    pub fn test() -> Auth {
        Auth::User("test".into(), "test".into())
    }
}

/// An HTTP answer; `status` 0 means the request never got one (`body` holds the error).
#[derive(Clone, Debug)]
pub struct Response {
    /// HTTP status code, or 0 on a transport error.
    pub status: u16,
    /// Response headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// Response body as text (the transport error for status 0).
    pub body: String,
}

impl Response {
    /// First header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Body parsed as JSON (`Value::Null` if empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// ARI HTTP client bound to one instance; cheap to clone and share between threads.
#[derive(Clone)]
pub struct AriHttp {
    base_url: String,
    agent: ureq::Agent,
    auth: Auth,
}

impl AriHttp {
    /// Client for `base_url` (`http://127.0.0.1:PORT`) with default auth `test`/`test`.
    pub fn new(base_url: &str) -> AriHttp {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(20)))
            .max_idle_connections(64)
            .max_idle_connections_per_host(32)
            .allow_non_standard_methods(true)
            .build();
        AriHttp {
            base_url: base_url.trim_end_matches('/').into(),
            agent: config.into(),
            auth: Auth::test(),
        }
    }

    /// The same client (sharing its connection pool) with other default credentials.
    pub fn with_auth(&self, auth: Auth) -> AriHttp {
        AriHttp {
            auth,
            ..self.clone()
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Sends one request; `path_and_query` is relative to `/ari` (`/channels?x=1`) unless it starts with `/ari/`.
    pub fn request(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&Value>,
        auth: &Auth,
    ) -> Response {
        let url = if path_and_query.starts_with("/ari/") || path_and_query == "/ari" {
            format!("{}{}", self.base_url, path_and_query)
        } else {
            format!("{}/ari{}", self.base_url, path_and_query)
        };
        self.send(method, url, body, auth)
    }

    /// GET of a path outside ARI (such as `/metrics`), without credentials.
    pub fn get_outside_ari(&self, path_and_query: &str) -> Response {
        self.send(
            "GET",
            format!("{}{}", self.base_url, path_and_query),
            None,
            &Auth::None,
        )
    }

    fn send(&self, method: &str, mut url: String, body: Option<&Value>, auth: &Auth) -> Response {
        let mut builder = ureq::http::Request::builder().method(method);
        match auth {
            Auth::User(u, p) => {
                builder = builder.header(
                    "Authorization",
                    format!("Basic {}", base64(format!("{u}:{p}").as_bytes())),
                );
            }
            Auth::ApiKey(k) => {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str("api_key=");
                url.push_str(&encode(k));
            }
            Auth::None => {}
        }
        builder = builder.uri(url.as_str());
        let result = match body {
            Some(v) => {
                let req = builder
                    .header("Content-Type", "application/json")
                    .body(serde_json::to_vec(v).expect("serialize JSON"))
                    .expect("build request");
                self.agent.run(req)
            }
            None => self.agent.run(builder.body(()).expect("build request")),
        };
        response_of(result, method, &url)
    }

    /// GET with the default credentials.
    pub fn get(&self, path_and_query: &str) -> Response {
        self.request("GET", path_and_query, None, &self.auth)
    }

    /// POST with the default credentials and an optional JSON body.
    pub fn post(&self, path_and_query: &str, body: Option<&Value>) -> Response {
        self.request("POST", path_and_query, body, &self.auth)
    }

    /// DELETE with the default credentials.
    pub fn delete(&self, path_and_query: &str) -> Response {
        self.request("DELETE", path_and_query, None, &self.auth)
    }

    /// `POST /ari/events/claim?channelId=..&application=..`.
    pub fn claim(&self, channel_id: &str, app: &str) -> Response {
        self.post(
            &format!(
                "/events/claim?channelId={}&application={}",
                encode(channel_id),
                encode(app)
            ),
            None,
        )
    }

    /// `POST /ari/channels/{id}/continue` (back to the dialplan after Stasis).
    pub fn continue_channel(&self, channel_id: &str) -> Response {
        self.post(&format!("/channels/{}/continue", encode(channel_id)), None)
    }

    /// `DELETE /ari/channels/{id}` (hang up).
    pub fn hangup(&self, channel_id: &str) -> Response {
        self.delete(&format!("/channels/{}", encode(channel_id)))
    }

    /// Global dialplan variable via `GET /ari/asterisk/variable`; `None` if unset or empty.
    pub fn global_var(&self, name: &str) -> Option<String> {
        let r = self.get(&format!("/asterisk/variable?variable={}", encode(name)));
        if r.status != 200 {
            return None;
        }
        match r.json().get("value").and_then(Value::as_str) {
            Some("") | None => None,
            Some(v) => Some(v.to_string()),
        }
    }
}

/// The answer of `agent.run`, or the transport error as status 0.
fn response_of(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    method: &str,
    url: &str,
) -> Response {
    match result {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let mut bytes = Vec::new();
            let body = match resp.body_mut().as_reader().read_to_end(&mut bytes) {
                Ok(_) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) => format!("(error reading body: {e})"),
            };
            Response {
                status,
                headers,
                body,
            }
        }
        Err(e) => Response {
            status: 0,
            headers: Vec::new(),
            body: format!("{method} {url}: {e}"),
        },
    }
}

/// Raw requests, for tests that need exact control over what is sent.
impl AriHttp {
    /// Sends `method path` with exactly these headers and body (no default
    /// credentials; `path` is used as given, query string included). Header
    /// names go out as written (`Origin`, not the `origin` of the http crate's
    /// header map): ARI reads `Origin` and the CORS request headers
    /// case-sensitively. The headers ureq adds itself (`host`, `user-agent`,
    /// `accept`, `content-length`) stay lower-case.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response {
        let url = format!("{}{}", self.base_url, path);
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(url.as_str());
        for (name, value) in headers {
            builder = ureq_proto::client::header_raw(builder, name, value.as_bytes());
        }
        let result = match body {
            Some(bytes) => self
                .agent
                .run(builder.body(bytes.to_vec()).expect("build request")),
            None => self.agent.run(builder.body(()).expect("build request")),
        };
        response_of(result, method, &url)
    }

    /// Writes `bytes` to a new connection and returns everything read until
    /// the server closes it or `timeout` passes (for requests no HTTP client
    /// would send).
    pub fn raw_tcp(&self, bytes: &[u8], timeout: Duration) -> String {
        use std::io::Write;
        let address = self.base_url.trim_start_matches("http://");
        let mut stream = match std::net::TcpStream::connect(address) {
            Ok(stream) => stream,
            Err(e) => return format!("(connect {address}: {e})"),
        };
        stream.set_read_timeout(Some(timeout)).ok();
        if let Err(e) = stream.write_all(bytes) {
            return format!("(write: {e})");
        }
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// HTTP Basic credentials as an `Authorization` header value.
pub fn basic_authorization(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(super::base64(b"test:test"), "dGVzdDp0ZXN0");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
    }

    /// What `raw` writes on the wire, read by a listener that answers 204.
    fn sent_by_raw(headers: &[(&str, &str)]) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            while !seen.ends_with(b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            stream.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").ok();
            String::from_utf8_lossy(&seen).into_owned()
        });
        let response = super::AriHttp::new(&url).raw("POST", "/ari/events/claim", headers, None);
        assert_eq!(response.status, 204, "{}", response.body);
        server.join().expect("listener")
    }

    #[test]
    fn raw_sends_header_names_as_written() {
        let sent = sent_by_raw(&[
            ("Origin", "http://good.example"),
            ("Access-Control-Request-Method", "POST"),
            ("origin", "http://lower.example"),
        ]);
        for line in ["Origin: http://good.example", "Access-Control-Request-Method: POST", "origin: http://lower.example"]
        {
            assert!(sent.split("\r\n").any(|l| l == line), "{line:?} not in {sent:?}");
        }
    }

    #[test]
    fn encode_keeps_unreserved() {
        assert_eq!(super::encode("a b:c/d~e"), "a%20b%3Ac%2Fd~e");
    }
}
