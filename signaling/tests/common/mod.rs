//! Helpers shared by the signaling integration tests: an in-process server,
//! a WebSocket client speaking the JSON protocol, and a minimal HTTP/1.1 GET.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use signaling::{Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

/// How long to wait for any single reply.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// The admin API token of test servers.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The API key of test servers.
pub const API_KEY: &str = "test-key";
/// The API secret of test servers.
pub const API_SECRET: &str = "test-secret";

/// The keys test servers check tokens with.
pub fn keys() -> signaling::auth::Keys {
    signaling::auth::Keys::new(API_KEY, API_SECRET.as_bytes().to_vec())
}

/// A token for `room` as `identity`, with dev mode's default grants.
pub fn token(room: &str, identity: &str) -> String {
    token_with(room, identity, signaling::auth::Grants::dev_default())
}

/// A token for `room` as `identity` with `grants`, valid for an hour.
pub fn token_with(room: &str, identity: &str, grants: signaling::auth::Grants) -> String {
    keys()
        .mint(&signaling::auth::TokenRequest {
            room: room.to_owned(),
            identity: identity.to_owned(),
            name: String::new(),
            grants,
            ttl: Duration::from_secs(3600),
        })
        .expect("test token mints")
}

/// A fresh identity that is not a call ID.
pub fn fresh_identity() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("tester-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A client connection to `/ws`.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Starts a server on loopback with ephemeral TCP and UDP ports.
pub async fn start_server() -> Server {
    start_server_with(|_| {}).await
}

/// The test servers' config: loopback, dev mode, [`API_KEY`] and
/// [`API_SECRET`].
pub fn test_config() -> Config {
    let mut c = Config::loopback(ADMIN_TOKEN);
    c.api_key = Some(API_KEY.to_owned());
    c.api_secret = Some(API_SECRET.to_owned());
    c
}

/// Starts a server on loopback with ephemeral ports and `config`'s other
/// settings (for example a short ring timeout).
pub async fn start_server_with(config: impl FnOnce(&mut Config)) -> Server {
    let mut c = test_config();
    config(&mut c);
    signaling::start(c).await.expect("server starts")
}

/// Sends `register` and returns the call ID from `registered`.
pub async fn register(ws: &mut Ws, name: &str, call_id: Option<&str>) -> String {
    let mut msg = serde_json::json!({"type": "register", "name": name});
    if let Some(id) = call_id {
        msg["callId"] = id.into();
        msg["token"] = token("calls", id).into();
    }
    send_json(ws, &msg).await;
    let reply = recv_json(ws).await;
    assert_eq!(reply["type"], "registered", "register failed: {reply}");
    let id = reply["callId"].as_str().expect("callId is a string");
    assert_eq!(id.len(), 7, "call ID {id:?}");
    id.to_owned()
}

/// Shuts the server down, failing the test if that takes more than 10 s.
pub async fn stop_server(server: Server) {
    timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("server shuts down within 10 s")
        .expect("server task ends cleanly");
}

/// Opens a signaling WebSocket, with a token on the URL (room `lobby`, a
/// fresh identity) that serves `register` and `resume`; `join` carries
/// its own ([`join`]).
pub async fn connect(addr: SocketAddr) -> Ws {
    let url = format!(
        "ws://{addr}/ws?access_token={}",
        token("lobby", &fresh_identity())
    );
    connect_url(&url).await
}

/// Opens a signaling WebSocket without a token.
pub async fn connect_bare(addr: SocketAddr) -> Ws {
    connect_url(&format!("ws://{addr}/ws")).await
}

async fn connect_url(url: &str) -> Ws {
    let (ws, response) = timeout(RECV_TIMEOUT, connect_async(url))
        .await
        .expect("websocket connect timed out")
        .expect("websocket connects");
    assert_eq!(response.status().as_u16(), 101, "upgrade status");
    ws
}

/// Sends a text frame.
pub async fn send_text(ws: &mut Ws, text: impl Into<String>) {
    let text: String = text.into();
    ws.send(Message::text(text)).await.expect("send text frame");
}

/// Sends a JSON value as a text frame.
pub async fn send_json(ws: &mut Ws, value: &Value) {
    send_text(ws, value.to_string()).await;
}

/// The next frame that is not a WebSocket-level ping or pong, or `None` if
/// the stream ended. Panics after [`RECV_TIMEOUT`].
pub async fn next_frame(ws: &mut Ws) -> Option<Message> {
    let deadline = Instant::now() + RECV_TIMEOUT;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("timed out waiting for a frame from the server");
        match frame {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(message)) => return Some(message),
            Some(Err(err)) => panic!("websocket read failed: {err}"),
            None => return None,
        }
    }
}

/// The next JSON text message. Panics on timeout, close, or anything else.
pub async fn recv_json(ws: &mut Ws) -> Value {
    match next_frame(ws).await {
        Some(Message::Text(text)) => serde_json::from_str(text.as_str())
            .unwrap_or_else(|e| panic!("server sent non-JSON text {text:?}: {e}")),
        other => panic!("expected a JSON text message, got {other:?}"),
    }
}

/// Asserts that the next message is an `error` with `code`, and returns it.
pub async fn expect_error(ws: &mut Ws, code: &str) -> Value {
    let msg = recv_json(ws).await;
    assert_eq!(msg["type"], "error", "expected an error, got {msg}");
    assert_eq!(msg["code"], code, "wrong error code in {msg}");
    let message = msg["message"].as_str().expect("error has a string message");
    assert!(!message.is_empty(), "error message is empty in {msg}");
    msg
}

/// Sends `ping` and asserts that the next message is exactly `pong`.
pub async fn ping_pong(ws: &mut Ws) {
    send_json(ws, &serde_json::json!({"type": "ping"})).await;
    let msg = recv_json(ws).await;
    assert_eq!(msg, serde_json::json!({"type": "pong"}));
}

/// Joins `room` as `name`; returns the whole `joined` message.
pub async fn join(ws: &mut Ws, room: &str, name: &str) -> Value {
    send_json(
        ws,
        &serde_json::json!({"type": "join", "room": room, "name": name,
                            "token": token(room, &fresh_identity())}),
    )
    .await;
    let msg = recv_json(ws).await;
    assert_eq!(msg["type"], "joined", "join failed: {msg}");
    assert_eq!(msg["room"], room, "{msg}");
    let peer_id = msg["peerId"].as_str().expect("joined has a string peerId");
    assert!(
        peer_id.len() > 1
            && peer_id.starts_with('p')
            && peer_id[1..].bytes().all(|b| b.is_ascii_digit()),
        "peerId {peer_id:?} is not p<n>"
    );
    assert!(msg["participants"].is_array(), "{msg}");
    assert!(msg["iceServers"].is_array(), "{msg}");
    msg
}

/// Reads until the server's close frame; returns the close frame and every
/// JSON text message received before it.
pub async fn expect_close(ws: &mut Ws) -> (Option<CloseFrame>, Vec<Value>) {
    let mut before = Vec::new();
    loop {
        match next_frame(ws).await {
            Some(Message::Text(text)) => before.push(
                serde_json::from_str(text.as_str())
                    .unwrap_or_else(|e| panic!("server sent non-JSON text {text:?}: {e}")),
            ),
            Some(Message::Close(frame)) => return (frame, before),
            None => panic!("stream ended without a close frame; got {before:?}"),
            Some(other) => panic!("unexpected frame before close: {other:?}"),
        }
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lower-cased) and values.
    pub headers: Vec<(String, String)>,
    /// The decoded body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("body is UTF-8")
    }
}

/// A minimal HTTP/1.1 GET over a fresh connection (`Connection: close`).
pub async fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    http_request(addr, "GET", path, &[]).await
}

/// A minimal HTTP/1.1 request with no body over a fresh connection.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    assert!(addr.ip().is_loopback(), "tests only talk to loopback");
    let extra: String = headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    let fut = async {
        let mut stream = TcpStream::connect(addr).await.expect("tcp connect");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: */*\r\n{extra}\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("write request");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read response");
        raw
    };
    let raw = timeout(RECV_TIMEOUT, fut)
        .await
        .expect("HTTP request timed out");
    parse_response(&raw)
}

/// A minimal HTTP/1.1 request with a body over a fresh connection.
pub async fn http_send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    assert!(addr.ip().is_loopback(), "tests only talk to loopback");
    let extra: String = headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    let fut = async {
        let mut stream = TcpStream::connect(addr).await.expect("tcp connect");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n{extra}\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.expect("write head");
        stream.write_all(body).await.expect("write body");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read response");
        raw
    };
    let raw = timeout(RECV_TIMEOUT, fut)
        .await
        .expect("HTTP request timed out");
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> HttpResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response has a header terminator");
    let head = std::str::from_utf8(&raw[..split]).expect("headers are UTF-8");
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(
        parts.next(),
        Some("HTTP/1.1"),
        "status line {status_line:?}"
    );
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .expect("numeric status");
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').expect("header has a colon");
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        decode_chunked(rest)
    } else if let Some((_, len)) = headers.iter().find(|(n, _)| n == "content-length") {
        let len: usize = len.parse().expect("numeric content-length");
        assert!(rest.len() >= len, "body shorter than content-length");
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn decode_chunked(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_line = std::str::from_utf8(&data[..eol]).expect("chunk size is text");
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).expect("hex chunk size");
        data = &data[eol + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// The body of `GET /metrics`, asserting a 200.
pub async fn metrics(addr: SocketAddr) -> String {
    let response = http_get(addr, "/metrics").await;
    assert_eq!(response.status, 200, "/metrics: {}", response.text());
    response.text()
}

/// The value of the sample `series` (the name with its labels exactly as
/// rendered, e.g. `sfu_ws_errors_total{code="bad_json"}`), if present.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            Some(value.trim().parse().expect("numeric sample value"))
        })
}

/// Polls `/metrics` for up to 5 s until `series` equals `want`; returns
/// the last scrape. Panics with the last value seen otherwise.
pub async fn wait_for_metric(addr: SocketAddr, series: &str, want: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = metrics(addr).await;
        let value = metric(&text, series);
        if value == Some(want) {
            return text;
        }
        if Instant::now() >= deadline {
            panic!("{series} is {value:?} after 5 s, want {want}\n{text}");
        }
        sleep(Duration::from_millis(50)).await;
    }
}
